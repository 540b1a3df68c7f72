"""Event-loop stall probe: a precise QTimer that records how late each tick fires."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Qt, QTimer


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; nan for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[k]


class StallProbe(QObject):
    """Ticks every `interval_ms`; each tick's lateness (actual minus intended gap) is a stall sample in ms."""

    def __init__(self, interval_ms: int = 10, parent=None):
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.samples: list[float] = []
        self._last: float | None = None
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        """Begin recording (clears earlier samples)."""
        self.samples.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        """Stop recording."""
        self._timer.stop()

    @property
    def active(self) -> bool:
        """True while recording."""
        return self._timer.isActive()

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.samples.append(max(0.0, (now - self._last) * 1e3 - self.interval_ms))
        self._last = now

    def stats(self) -> dict:
        """n, p50, p99 and max lateness in milliseconds."""
        return {"n": len(self.samples), "p50_ms": percentile(self.samples, 50),
                "p99_ms": percentile(self.samples, 99), "max_ms": max(self.samples, default=float("nan"))}

    def describe(self) -> str:
        """One line for logs and the status bar."""
        s = self.stats()
        return (f"UI event-loop stall over {s['n']} ticks of {self.interval_ms} ms: p50 {s['p50_ms']:.1f} ms, "
                f"p99 {s['p99_ms']:.1f} ms, max {s['max_ms']:.1f} ms")
