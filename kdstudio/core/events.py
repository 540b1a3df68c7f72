"""Events the engine emits; the GUI worker and the CLI render the same stream."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

# Event kinds (public: listeners switch on these strings).
RUN_STARTED = "run_started"
STAGE_STARTED = "stage_started"
STEP = "step"                  # throttled step metrics of the current stage
EPOCH = "epoch"                # end-of-epoch metrics (train loss terms, val accuracy, lr)
CHECKPOINT = "checkpoint"      # a checkpoint was written
LOG = "log"                    # an informational message
WARNING = "warning"            # something the user should know about
STAGE_FINISHED = "stage_finished"
RUN_FINISHED = "run_finished"  # data: the summary dict
RUN_FAILED = "run_failed"      # data: {"message": one sentence, "details": traceback text}

STAGES = ("teacher", "distill", "baseline", "finetune", "compress", "evaluate", "export")


@dataclass
class Event:
    """One thing that happened in a run."""

    kind: str
    stage: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)


Listener = Callable[[Event], None]


class RunControl:
    """Cooperative stop / pause flags, safe to set from another thread (the GUI)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def stop(self) -> None:
        """Ask the engine to stop at the next step (it saves a checkpoint first)."""
        self._stop.set()
        self._running.set()

    def pause(self) -> None:
        """Ask the engine to wait before its next step."""
        self._running.clear()

    def resume(self) -> None:
        """Let a paused engine go on."""
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        """True once stop() was called."""
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        """True while paused."""
        return not self._running.is_set()

    def wait_if_paused(self, on_pause: Callable[[], None] | None = None) -> None:
        """Block while paused (returns at once when running or when stop was requested)."""
        if self._running.is_set():
            return
        if on_pause:
            on_pause()
        while not self._running.wait(0.1):
            pass


EPOCH_LINE_SKIPS = ("epoch", "epochs", "val_acc", "lr", "acc")


def epoch_line(data: dict) -> str:
    """One sentence for an epoch's end: validation accuracy and the mean loss terms (total left out when it is the
    only term, as in plain cross-entropy stages)."""
    terms = {k: v for k, v in data.items() if k not in EPOCH_LINE_SKIPS and isinstance(v, float)}
    if "total" in terms and len(terms) == 2 and len(set(terms.values())) == 1:
        terms.pop("total")
    return (f"epoch {data.get('epoch')}/{data.get('epochs')}: val acc {data.get('val_acc', float('nan')):.2%}"
            + (" · " + ", ".join(f"{k} {v:.4f}" for k, v in terms.items()) if terms else ""))
