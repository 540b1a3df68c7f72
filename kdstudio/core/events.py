"""Events the engine emits, with typed payloads; the GUI worker, the CLI and log.txt render the same stream.

Each kind has a payload dataclass (loss terms nested under `terms`, never spread flat). `Event.data` is the
payload as a plain dict, for listeners that index it; `describe(event)` is the one sentence every renderer shows.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

# Event kinds (public: listeners switch on these strings).
RUN_STARTED = "run_started"        # the plan: every stage that will train, for a sweep every point × seed
MEMBER_STARTED = "member_started"  # a sweep moves on to its next point × seed
MEMBER_FINISHED = "member_finished"
STAGE_STARTED = "stage_started"
STEP = "step"                  # throttled step metrics of the current stage
EPOCH = "epoch"                # end-of-epoch metrics (train loss terms, val accuracy, lr)
CHECKPOINT = "checkpoint"      # a checkpoint was written
CACHE_FILL = "cache_fill"      # progress of the disk teacher-output cache's one filling pass
LOG = "log"                    # an informational message
WARNING = "warning"            # something the user should know about
STAGE_FINISHED = "stage_finished"
RUN_FINISHED = "run_finished"  # data: the summary dict
RUN_FAILED = "run_failed"      # data: {"message": one sentence, "details": traceback text}

STAGES = ("teacher", "distill", "baseline", "finetune", "compress", "evaluate", "export")


# ---- payloads ---------------------------------------------------------------------------------------------

@dataclass
class RunStarted:
    """A run (or sweep) begins: where, on what, and the plan it will follow."""

    run_dir: str
    device: str | None
    resumed: bool
    plan: dict                  # pipeline.plan.RunPlan.to_dict()
    config: str = ""            # the resolved config as TOML


@dataclass
class MemberStarted:
    """One point × seed of a sweep begins (its own run folder)."""

    index: int                  # 1-based
    total: int
    point: dict
    seed: int
    run_dir: str
    device: str | None = None
    stages: list = field(default_factory=list)   # this member's planned stages


@dataclass
class MemberFinished:
    """One point × seed of a sweep ended."""

    index: int
    total: int
    status: str
    run_dir: str


@dataclass
class Step:
    """Mean loss terms over the last logging window of a training stage."""

    epoch: int
    epochs: int
    step: int
    steps: int
    global_step: int
    lr: float
    samples_per_s: float
    terms: dict[str, float]     # "total", the method's terms, "acc", "teacher_ce"


@dataclass
class Epoch:
    """An epoch ended: its mean loss terms, validation accuracy and learning rate."""

    epoch: int
    epochs: int
    val_acc: float | None
    lr: float
    terms: dict[str, float]


@dataclass
class Checkpoint:
    """A checkpoint was written."""

    path: str
    epoch: int
    step: int
    complete: bool


@dataclass
class Message:
    """A log line or a warning; `teacher_cache` says whether the stage caches teacher outputs, when it tells;
    `reused_from` names the run whose teacher (or baseline) this run reuses."""

    message: str
    teacher_cache: bool | None = None
    reused_from: str | None = None      # the teacher or baseline was not trained here: the run that trained it


@dataclass
class StageInfo:
    """A stage starts or finishes; `info` holds what that stage reports (method, accuracy, exports, ...)."""

    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class CacheFill:
    """Progress of filling the on-disk teacher-output cache (streamed data): rows written of all rows."""

    done: int
    total: int
    path: str
    bytes: int                  # the cache file's size when full


@dataclass
class RunFinished:
    """The run ended (completed or stopped): its summary (or a sweep's result)."""

    summary: dict


@dataclass
class RunFailed:
    """The run failed: one sentence and the traceback."""

    message: str
    details: str = ""


PAYLOADS: dict[str, type] = {
    RUN_STARTED: RunStarted, MEMBER_STARTED: MemberStarted, MEMBER_FINISHED: MemberFinished,
    STAGE_STARTED: StageInfo, STAGE_FINISHED: StageInfo, STEP: Step, EPOCH: Epoch, CHECKPOINT: Checkpoint,
    CACHE_FILL: CacheFill,
    LOG: Message, WARNING: Message, RUN_FINISHED: RunFinished, RUN_FAILED: RunFailed,
}


def make_payload(kind: str, data: dict) -> Any:
    """The typed payload of `kind` from keyword data (stage events keep their free-form info)."""
    cls = PAYLOADS[kind]
    if cls is StageInfo:
        return StageInfo(dict(data))
    if cls is Message:
        return Message(str(data.get("message", "")), data.get("teacher_cache"), data.get("reused_from"))
    return cls(**data)


def payload_dict(payload) -> dict[str, Any]:
    """The payload as the plain dict `Event.data` shows (stage info flat, as listeners index it)."""
    if isinstance(payload, StageInfo):
        return dict(payload.info)
    if isinstance(payload, Message):
        extra = {"teacher_cache": payload.teacher_cache, "reused_from": payload.reused_from}
        return {"message": payload.message, **{k: v for k, v in extra.items() if v is not None}}
    return {f.name: getattr(payload, f.name) for f in fields(payload)}


@dataclass
class Event:
    """One thing that happened in a run: its kind, stage, typed payload (and the payload as a dict)."""

    kind: str
    stage: str | None = None
    payload: Any = None
    time: float = field(default_factory=time.time)

    def __post_init__(self):
        if isinstance(self.payload, dict):  # Event(kind, stage, {...}): the dict becomes the kind's payload
            self.payload = make_payload(self.kind, self.payload)

    @property
    def data(self) -> dict[str, Any]:
        """The payload as a plain dict."""
        return payload_dict(self.payload) if self.payload is not None else {}

    def record(self) -> dict[str, Any]:
        """The flat form metrics.jsonl keeps (loss terms beside the bookkeeping, as since its first version)."""
        d = dict(self.data)
        terms = d.pop("terms", {}) or {}
        return {"kind": self.kind, "stage": self.stage, "time": round(self.time, 3), **d, **terms}


Listener = Callable[[Event], None]


def terms_of(data: dict) -> dict[str, float]:
    """Loss terms of a STEP/EPOCH record: nested (events) or flat (metrics.jsonl lines)."""
    if isinstance(data.get("terms"), dict):
        return data["terms"]
    skip = {"kind", "stage", "time", "epoch", "epochs", "step", "steps", "global_step", "lr", "samples_per_s",
            "val_acc"}
    return {k: v for k, v in data.items() if k not in skip and isinstance(v, (int, float))
            and not isinstance(v, bool)}


# ---- one rendering ----------------------------------------------------------------------------------------

def epoch_line(data: dict) -> str:
    """One sentence for an epoch's end: validation accuracy and the mean loss terms (train accuracy left out, and
    total when it is the only term, as in plain cross-entropy stages)."""
    terms = {k: v for k, v in terms_of(data).items() if k != "acc" and isinstance(v, float)}
    if "total" in terms and len(terms) == 2 and len(set(terms.values())) == 1:
        terms.pop("total")
    val = data.get("val_acc")
    acc = f"val acc {val:.2%}" if isinstance(val, (int, float)) else "no validation split"
    return (f"epoch {data.get('epoch')}/{data.get('epochs')}: {acc}"
            + (" · " + ", ".join(f"{k} {v:.4f}" for k, v in terms.items()) if terms else ""))


def describe(e: Event) -> str | None:
    """The one sentence log.txt, the CLI and the GUI log show for an event; None for events that are not logged
    (steps, a routine per-epoch checkpoint, the end-of-run summary)."""
    d = e.data
    if e.kind in (LOG, WARNING, RUN_FAILED):
        message = str(d.get("message", ""))
        return f"{e.kind.replace('_', ' ')}: {message}" if e.kind != LOG else message
    if e.kind == EPOCH:
        return epoch_line(d)
    if e.kind == CHECKPOINT:
        if not d.get("complete") and not d.get("step"):
            return None  # the checkpoint after every epoch is implied
        where = "stage complete" if d.get("complete") else f"epoch {d.get('epoch')}, step {d.get('step')}"
        return f"checkpoint written: {Path(str(d.get('path'))).name} ({where})"
    if e.kind == CACHE_FILL:
        if d.get("done") != d.get("total") and d.get("done"):
            return None  # the first and the last line of a fill are logged; the GUI shows every step
        verb = "complete" if d.get("done") == d.get("total") else "filling"
        return (f"teacher-output cache {verb}: {d.get('done'):,}/{d.get('total'):,} rows, "
                f"{d.get('bytes', 0) / 2**20:.1f} MiB on disk ({Path(str(d.get('path'))).name})")
    if e.kind == RUN_STARTED:
        plan = d.get("plan") or {}
        return (f"{'Resumed' if d.get('resumed') else 'Started'} on {d.get('device')}: "
                f"{plan.get('description', '')}".rstrip(": "))
    if e.kind == MEMBER_STARTED:
        return f"Run {d['index']}/{d['total']} of the sweep: {Path(d['run_dir']).parent.name}, seed {d['seed']}."
    if e.kind == MEMBER_FINISHED:
        return f"Run {d['index']}/{d['total']} of the sweep {d['status']}."
    if e.kind == STAGE_STARTED:
        return f"── {e.stage} ──"
    if e.kind == STAGE_FINISHED:
        return f"{e.stage} finished" + (f": test accuracy {d['accuracy']:.2%}"
                                        if isinstance(d.get("accuracy"), float) else "")
    return None


def log_line(e: Event) -> str | None:
    """describe() with a time stamp and the stage, as log.txt holds it."""
    text = describe(e)
    if text is None:
        return None
    stamp = _dt.datetime.fromtimestamp(e.time).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp} [{e.stage or 'run'}] {text}"


def as_dicts(events) -> list[dict]:
    """Events as plain dicts (tests, debugging)."""
    return [{"kind": e.kind, "stage": e.stage, **e.data} for e in events]


class Emitter:
    """What stages call: `emit(kind, stage, **data)` builds the typed payload and hands the Event on."""

    def __init__(self, sink: Callable[[Event], None]):
        self.sink = sink

    def __call__(self, kind: str, stage: str | None = None, **data) -> Event:
        e = Event(kind, stage, make_payload(kind, data))
        self.sink(e)
        return e


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

