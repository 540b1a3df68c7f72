"""The pages not on screen, built ahead of time: one per idle moment after the window has appeared.

Building a page takes 150-450 ms (its forms, plots, the style's polish), which was the first click on each tab
(benchmarks/bench_gui_stall.py). The window still shows only the page on screen first, so it appears as quickly
as before; then a chain of zero-delay timers builds the others one at a time, each in one tick of the event loop,
so a paint, a key or a click in between waits for at most one page. Each is also painted once off screen (its
glyphs, the plots' axis pictures), so its first click costs what a later one does. The chain waits while the person is acting
(a key, a click, the wheel: the last QUIET_MS) and while a run goes (a build then would be a stall on top of the
live plots'; a tab opened during a run builds its page when clicked, as before). `done` says when every page is
built (app.main then freezes the objects alive out of the garbage collector's work: gcguard.freeze).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication, QWidget

QUIET_MS = 400   # no build this long after the person's last key, click or wheel turn
RETRY_MS = 200   # how soon a waiting chain looks again
INPUT_EVENTS = {QEvent.KeyPress, QEvent.MouseButtonPress, QEvent.MouseButtonDblClick, QEvent.Wheel}


class PagePrebuilder(QObject):
    """Builds the not-yet-built pages of `slots` (name → page_slots.PageSlot) in idle ticks, in order."""

    done = Signal()  # every page is built

    def __init__(self, slots: dict, sized_like: Callable[[], QWidget | None], busy: Callable[[], bool],
                 parent=None):
        super().__init__(parent)
        self.slots, self._sized_like, self._busy = slots, sized_like, busy
        self._last_input = 0.0
        self._timer = QTimer(self, singleShot=True, timeout=self._tick)
        self.started = False

    def start(self) -> None:
        """Begin the chain (after the window is shown); returns at once."""
        if self.started:
            return
        self.started = True
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)
        self._timer.start(0)

    def remaining(self) -> list[str]:
        """The pages not built yet, in the order they will be."""
        return [name for name, slot in self.slots.items() if slot.page is None]

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        """Note the time of the person's input (the event goes on unchanged)."""
        if event.type() in INPUT_EVENTS:
            self._last_input = time.monotonic()
        return False

    def _tick(self) -> None:
        todo = self.remaining()
        if not todo:
            self._finish()
            return
        if self._busy() or (time.monotonic() - self._last_input) * 1000 < QUIET_MS:
            self._timer.start(RETRY_MS)
            return
        slot = self.slots[todo[0]]
        like = self._sized_like()
        if like is not None and like is not slot:
            slot.resize(like.size())  # laid out at the size it will be shown at, not the stack's default
        page = slot.ensure()
        page.ensurePolished()  # the style's polish of it and its children, now rather than at its first show
        if slot.layout() is not None:
            slot.layout().activate()
        slot.grab()  # painted once off screen: its fonts' glyphs and the plots' axis pictures are made now
        self._timer.start(0)

    def _finish(self) -> None:
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        self.done.emit()
