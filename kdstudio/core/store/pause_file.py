"""Pause a run from outside its process: a `pause` file in the run folder, checked by the run at most every POLL_S.

A window that started a run as a torchrun subprocess (gui/run_torchrun.py), or a person at a shell (`touch
RUN/pause`, `rm RUN/pause`), pauses and resumes it this way; stop stays a signal (SIGTERM / Ctrl-C). Under DDP
rank 0 alone reads the file and shares it with the other ranks through the per-step flag all-reduce
(train/distributed.any_rank_each), so every rank waits together. Torch-free.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ..events import RunControl

PAUSE_FILE = "pause"
POLL_S = 0.5  # a stat at most this often, not one per step


def request_pause(folder: str | Path, paused: bool) -> None:
    """Create (paused) or remove (not paused) the run folder's pause file."""
    path = Path(folder) / PAUSE_FILE
    if paused:
        path.write_bytes(b"")
    else:
        path.unlink(missing_ok=True)


class FolderControl(RunControl):
    """A RunControl that is also paused while its run folder holds a `pause` file."""

    def __init__(self, folder: str | Path, poll_s: float = POLL_S):
        super().__init__()
        self.path = Path(folder) / PAUSE_FILE
        self.poll_s = poll_s
        self._next = 0.0
        self._file = False

    def _file_paused(self) -> bool:
        now = time.monotonic()
        if now >= self._next:
            self._file = self.path.exists()
            self._next = now + self.poll_s
        return self._file

    @property
    def paused(self) -> bool:
        """True while paused by pause() or by the pause file (never once a stop was asked)."""
        return not self.stop_requested and (RunControl.paused.fget(self) or self._file_paused())

    def wait_if_paused(self, on_pause: Callable[[], None] | None = None) -> None:
        """Block while paused, the file included (returns at once on a stop)."""
        if not self.paused:
            return
        if on_pause:
            on_pause()
        while self.paused:
            time.sleep(0.1)
