"""The window first: while the GUI thread paints the live plots, the training thread waits at its next step.

The run's QThread and the window share one interpreter lock. CPython hands it over every 5 ms to a thread that
asks, so a repaint of a plot (pyqtgraph paints in Python, ~10-20 ms) was cut into slices with the training
thread's Python between them: twice as long on screen, longer on a busy machine (benchmarks/bench_gui_stall.py).
Shortening or lengthening sys.setswitchinterval does not help (it is one interval for both threads; measured:
worse). Instead the GUI thread marks the work it must finish in one piece (`hold`), and the engine, which asks
its RunControl before every step whether to pause, is given a `YieldingControl` that also waits out a hold
(at most MAX_WAIT_S at a time, so a long paint never starves the run). One flag, no locks on the GUI side.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager

from ..core.events import RunControl

MAX_WAIT_S = 0.1  # the longest a step waits for the window; a hold longer than this shares the interpreter again

_idle = threading.Event()  # set while the GUI thread holds nothing
_idle.set()
_depth = 0                 # nesting of hold() (GUI thread only)
_waits = [0]               # steps that waited for a hold (for tests and benchmarks)


@contextmanager
def hold():
    """Ask a running engine to wait at its next step until the block (run in the GUI thread) is done."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    _idle.clear()
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            _idle.set()


def holding() -> bool:
    """True while the GUI thread is inside hold()."""
    return not _idle.is_set()


def steps_waited() -> int:
    """How many steps have waited for the window since the process started."""
    return _waits[0]


class YieldingControl(RunControl):
    """A RunControl whose step check (`wait_if_paused`) also lets the window finish what it holds."""

    def wait_if_paused(self, on_pause: Callable[[], None] | None = None) -> None:
        """Wait out a hold of the window (bounded), then block while paused as RunControl does."""
        if not _idle.is_set() and not self.stop_requested:
            _waits[0] += 1
            _idle.wait(MAX_WAIT_S)
        super().wait_if_paused(on_pause)
