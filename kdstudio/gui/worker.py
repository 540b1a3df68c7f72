"""The run worker: a QObject moved to a QThread that runs the core engine and turns its events into signals.

The engine thread only appends events to a locked buffer; the controller (GUI thread) drains it on a 50 ms timer
and emits them as one batch, so the window is told at most 20 times a second however fast the engine talks.

Keep torch work off the GUI thread. Measured on a 2-core CPU (digits, tiny models): a run in this worker is as
fast as engine.run on the main thread (~50-60k samples/s), but once the *main* thread has run parallel torch ops,
runs in other threads drop to ~21k samples/s (competing OpenMP teams). The app never computes on the GUI thread
(the catalog, parameter counts and exports run in background threads), so it keeps the fast path.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections import deque
from pathlib import Path

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from ..core.errors import KDError
from ..core.events import LOG, Event
from . import priority, refguard

BATCH_INTERVAL_MS = 50  # <= 20 updates a second


class RunWorker(QObject):
    """Runs `engine.run` (a single run or a sweep) in its thread; reports the result by signal."""

    done = Signal(dict)        # the summary (status "completed" or "stopped")
    failed = Signal(str, str)  # one-sentence message, details (traceback text)

    def __init__(self, cfg, out_dir: Path, resume: bool = False):
        super().__init__()
        self.cfg, self.out_dir, self.resume = cfg, Path(out_dir), resume
        self.control = priority.YieldingControl()  # steps aside while the window paints (priority.py)
        self._buffer: deque[Event] = deque()
        self._lock = threading.Lock()

    def _on_event(self, e: Event) -> None:
        with self._lock:
            self._buffer.append(e)

    def drain(self) -> list[Event]:
        """Every event received since the last drain (thread-safe)."""
        with self._lock:
            out = list(self._buffer)
            self._buffer.clear()
        return out

    @Slot()
    def run(self) -> None:
        """The thread's slot (a subclass overrides `work`, not this: PySide would run an overridden slot in the
        GUI thread)."""
        self.work()

    def work(self) -> None:
        """The thread's work: import the engine (torch) lazily, run, report."""
        try:
            from ..core.pipeline import engine
            self._leave_a_core_for_the_window()
            cfg = None if self.resume else self.cfg
            # one entry for a single run and a sweep (whose result is {"status", "rows", "runs", ...})
            summary = engine.run(cfg, self.out_dir, on_event=self._on_event, control=self.control,
                                 resume=self.resume)
        except KDError as e:
            self.failed.emit(str(e), traceback.format_exc())
        except BaseException as e:  # noqa: BLE001 - a bug must reach the window, not kill the thread silently
            self.failed.emit(f"Unexpected error: {e!r}. The details below help to report it.",
                             traceback.format_exc())
        else:
            self.done.emit(summary)


    def _leave_a_core_for_the_window(self) -> None:
        """Train with one CPU thread fewer than there are cores, so painting never waits for a core.

        With every core in PyTorch's OpenMP team, a busy machine (another process on one core) slowed a GUI run
        ~30x while the same run from the command line took twice as long: the team's threads wait for each other
        while the window's thread holds a core.
        """
        import torch
        cores = os.cpu_count() or 1
        threads = max(1, min(torch.get_num_threads(), cores - 1))
        torch.set_num_threads(threads)
        self._on_event(Event(LOG, None, {"message": f"Training with {threads} CPU thread{'s' * (threads > 1)} "
                                                    f"({cores} cores; one is left for the window)."}))


class RunThread(QObject):
    """Owns the worker and its thread; the GUI talks only to this object."""

    events = Signal(list)        # a batch of core Events, at most every 50 ms
    started = Signal(str)        # the run folder
    finished = Signal(dict)      # the summary; the thread has ended when this is emitted
    failed = Signal(str, str)    # message, details; the thread has ended when this is emitted
    state_changed = Signal(str)  # "idle" | "running" | "paused" | "stopping"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.thread: QThread | None = None
        self.worker: RunWorker | None = None
        self.state = "idle"
        self.run_dir: Path | None = None
        self._result: tuple | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(BATCH_INTERVAL_MS)
        self._timer.timeout.connect(self._flush)

    def is_active(self) -> bool:
        """True from start until the thread has ended."""
        return self.thread is not None

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    def start(self, cfg, out_dir: Path, resume: bool = False, nproc: int = 1) -> None:
        """Run the pipeline for `cfg` into `out_dir` (or resume the run there) in a new thread; nproc > 1: on that
        many processes under torchrun, followed from the run folder (run_torchrun.py)."""
        if self.is_active():
            raise RuntimeError("a run is already in progress")
        self.run_dir, self._result = Path(out_dir), None
        if nproc > 1:
            from .run_torchrun import TorchrunWorker
            self.worker = TorchrunWorker(cfg, self.run_dir, resume, nproc)
        else:
            from .run_process import worker_class  # a thread, or a child process when asked for (run_process.py)
            self.worker = worker_class()(cfg, self.run_dir, resume)
        self.thread = QThread(self)
        self.thread.setObjectName("kdstudio-run")
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.thread.finished.connect(self._on_thread_finished)
        self._timer.start()
        self.thread.start()
        self._set_state("running")
        self.started.emit(str(self.run_dir))

    def pause(self) -> None:
        """Ask the engine to wait before its next step."""
        if self.worker and self.state == "running":
            self.worker.control.pause()
            self._set_state("paused")

    def resume(self) -> None:
        """Let a paused run go on."""
        if self.worker and self.state == "paused":
            self.worker.control.resume()
            self._set_state("running")

    def stop(self) -> None:
        """Ask the engine to stop cleanly (it writes a checkpoint first)."""
        if self.worker and self.state in ("running", "paused"):
            self.worker.control.stop()
            self._set_state("stopping")

    def wait(self, ms: int = 30000) -> bool:
        """Block until the thread has ended (for shutdown); True when it did."""
        return self.thread.wait(ms) if self.thread is not None else True

    def _flush(self) -> None:
        refguard.top_up()  # any user of the controller (window, benchmark) survives long runs (see refguard.py)
        if self.worker is not None:
            batch = self.worker.drain()
            if batch:
                self.events.emit(batch)

    @Slot(dict)
    def _on_done(self, summary: dict) -> None:
        self._result = ("done", summary)
        self.thread.quit()

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        self._result = ("failed", message, details)
        self.thread.quit()

    @Slot()
    def _on_thread_finished(self) -> None:
        self._flush()
        self._timer.stop()
        result = self._result or ("failed", "The run ended without a result.", "")
        self.thread.deleteLater()  # the worker has no parent: dropping the reference frees it
        self.thread = self.worker = None
        self._set_state("idle")
        if result[0] == "done":
            self.finished.emit(result[1])
        else:
            self.failed.emit(result[1], result[2])
