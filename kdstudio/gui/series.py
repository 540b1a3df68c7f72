"""Qt-free data behind the plots and the progress bar: a run's curves and its ETA.

Both are fed the same records: live engine events (as `{"kind", "stage", **data}`) or the lines of a finished
run's metrics.jsonl, so a past run replays through exactly the code that drew it live.
"""

from __future__ import annotations

import math
import time

from ..core.events import terms_of

NOT_LOSSES = {"acc"}  # train accuracy per step: a metric, not a loss term
TRAINING_STAGES = ("teacher", "distill", "baseline", "finetune")


# The smoothing slider's weight applies per this many epochs of x: points logged densely (many per epoch) are
# smoothed as in TensorBoard, points an epoch apart (a small data set) hardly at all. Each point is already the mean
# of its logging window, and a per-point EMA over epoch-spaced points lagged steep curves by several epochs.
SMOOTHING_SPAN = 0.05


class Curve:
    """x/y points plus an incrementally maintained, debiased exponential moving average (TensorBoard's)."""

    __slots__ = ("x", "y", "_smooth", "_weight", "_last", "_decay")

    def __init__(self):
        self.x: list[float] = []
        self.y: list[float] = []
        self._smooth: list[float] = []
        self._weight, self._last, self._decay = 0.0, 0.0, 1.0

    def append(self, x: float, y: float) -> None:
        """Add one point (non-finite y values are kept out)."""
        if isinstance(y, (int, float)) and math.isfinite(y):
            self.x.append(float(x))
            self.y.append(float(y))

    def smoothed(self, weight: float) -> list[float]:
        """The debiased EMA of y with smoothing `weight` in [0, 1) per SMOOTHING_SPAN of x; only new points are
        computed."""
        if weight != self._weight:
            self._smooth, self._weight, self._last, self._decay = [], weight, 0.0, 1.0
        for i in range(len(self._smooth), len(self.y)):
            gap = self.x[i] - self.x[i - 1] if i else SMOOTHING_SPAN
            w = weight ** (gap / SMOOTHING_SPAN) if weight > 0 and gap > 0 else weight
            self._last = self._last * w + (1 - w) * self.y[i]
            self._decay *= w
            self._smooth.append(self._last / (1 - self._decay) if self._decay < 1 else self.y[i])
        return self._smooth

    def __len__(self) -> int:
        return len(self.x)


class RunSeries:
    """Every curve of one run, keyed by (stage, name); `version` grows whenever something was added."""

    def __init__(self, label: str = ""):
        self.label = label
        self.step: dict[tuple[str, str], Curve] = {}    # per-step loss terms, x = fractional epoch
        self.epoch: dict[tuple[str, str], Curve] = {}   # per-epoch mean loss terms, x = epoch
        self.val_acc: dict[str, Curve] = {}             # per-epoch validation accuracy per stage
        self.lr: dict[str, Curve] = {}                  # learning rate per stage, x = fractional epoch
        self.stage_done: dict[str, dict] = {}           # stage_finished data (teacher accuracy, ...)
        self.version = 0

    @staticmethod
    def _get(table: dict, key) -> Curve:
        c = table.get(key)
        if c is None:
            c = table[key] = Curve()
        return c

    def add(self, rec: dict) -> None:
        """Take one record (an engine event as a dict, or a metrics.jsonl line)."""
        kind, stage = rec.get("kind"), rec.get("stage") or "-"
        if kind == "step":
            steps = max(int(rec.get("steps") or 1), 1)
            x = (int(rec.get("epoch") or 1) - 1) + int(rec.get("step") or steps) / steps
            for k, v in terms_of(rec).items():
                self._get(self.step, (stage, k)).append(x, v)
            if isinstance(rec.get("lr"), (int, float)):
                self._get(self.lr, stage).append(x, rec["lr"])
        elif kind == "epoch":
            x = float(rec.get("epoch") or 0)
            for k, v in terms_of(rec).items():
                self._get(self.epoch, (stage, k)).append(x, v)
            if isinstance(rec.get("val_acc"), (int, float)):
                self._get(self.val_acc, stage).append(x, rec["val_acc"])
        elif kind == "stage_finished":
            self.stage_done[stage] = dict(rec)
        else:
            return
        self.version += 1

    def extend(self, records) -> "RunSeries":
        """Add many records; returns self."""
        for r in records:
            self.add(r)
        return self

    def loss_keys(self) -> list[tuple[str, str]]:
        """(stage, term) pairs that are loss terms, in the order they first appeared."""
        return [k for k in self.step if k[1] not in NOT_LOSSES]

    def teacher_reference(self) -> float | None:
        """The teacher's final validation accuracy (the reference line of the accuracy plot)."""
        c = self.val_acc.get("teacher")
        return c.y[-1] if c is not None and c.y else None

    def is_empty(self) -> bool:
        """True before the first point."""
        return not (self.step or self.epoch or self.val_acc)


def format_duration(seconds: float | None) -> str:
    """'1:05:09', '4:07' or '0:09'; '–' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


STUDENT_STAGES = ("distill", "baseline", "finetune", "compress")  # stages that train the student: alike in speed
AFTER_SHARE = 0.05  # of the bar, for the stages after training (evaluate, export): short, but not nothing


class Progress:
    """Overall progress and ETA over the run's training stages, from STEP events and the config."""

    def __init__(self, stage_epochs: dict[str, int], clock=time.monotonic, after: list[str] | None = None):
        self.stage_epochs = dict(stage_epochs)   # training stage -> epochs, in pipeline order
        self.after = list(after or [])           # stages after training (evaluate, export), counted in the bar
        self.after_done: set[str] = set()
        self.clock = clock
        self.steps_per_epoch: int | None = None
        self.done: dict[str, int] = {s: 0 for s in stage_epochs}
        self.rate: dict[str, float] = {}         # steps per second, smoothed
        self.stage: str | None = None
        self.epoch = self.epochs = 0
        self.samples_per_s = 0.0
        self._last: tuple[float, int] | None = None

    @classmethod
    def from_plan(cls, stages: list[dict], clock=time.monotonic) -> "Progress":
        """The training stages of a run's plan (RUN_STARTED / MEMBER_STARTED): only stages that train count, and
        stages finished before a resume count as done."""
        training = [s for s in stages if int(s.get("epochs") or 0) > 0]
        after = [s["name"] for s in stages if not int(s.get("epochs") or 0) and s["name"] in ("evaluate", "export")]
        p = cls({s["name"]: int(s["epochs"]) for s in training}, clock=clock, after=after)
        steps = next((int(s["steps"]) for s in training if s.get("steps")), None)
        p.steps_per_epoch = steps
        for s in training:
            if s.get("done") and steps:
                p.done[s["name"]] = int(s["epochs"]) * steps
        return p

    def stage_started(self, stage: str) -> None:
        """A new stage began."""
        self.stage, self._last = stage, None
        self.epoch, self.epochs = 0, self.stage_epochs.get(stage, 0)

    def stage_finished(self, stage: str) -> None:
        """Mark a stage complete."""
        if stage in self.stage_epochs and self.steps_per_epoch:
            self.done[stage] = self.stage_epochs[stage] * self.steps_per_epoch
        if stage in self.after:
            self.after_done.add(stage)

    def hold(self) -> None:
        """Paused (or resumed): the time until the next step is not a step's time, so it is left out of the rate."""
        self._last = None

    def step(self, d: dict, stage: str, when: float | None = None) -> None:
        """Take a STEP event's data; `when` is the event's own time (events reach the window in batches, so the
        arrival time would make several steps look simultaneous and the rate, hence the ETA, far too high)."""
        self.stage = stage
        self.steps_per_epoch = int(d.get("steps") or self.steps_per_epoch or 1)
        if stage in self.stage_epochs:
            self.stage_epochs[stage] = int(d.get("epochs") or self.stage_epochs[stage])
        g = int(d.get("global_step") or 0)
        now = self.clock() if when is None else when
        if self._last is not None and g > self._last[1] and now > self._last[0]:
            r = (g - self._last[1]) / (now - self._last[0])
            self.rate[stage] = r if stage not in self.rate else 0.7 * self.rate[stage] + 0.3 * r
        self._last = (now, g)
        self.done[stage] = g
        self.epoch, self.epochs = int(d.get("epoch") or 0), int(d.get("epochs") or 0)
        self.samples_per_s = float(d.get("samples_per_s") or 0.0)

    def _total(self, stage: str) -> int:
        return self.stage_epochs.get(stage, 0) * (self.steps_per_epoch or 0)

    def fraction(self) -> float:
        """Share of the run done, in [0, 1]: training steps (stages before the current one count as done), then
        AFTER_SHARE for evaluate and export, so the bar is full only when the run is."""
        total = sum(self._total(s) for s in self.stage_epochs)
        order = list(self.stage_epochs)
        after_started = self.stage in self.after
        current = order.index(self.stage) if self.stage in order else (len(order) if self.stage else 0)
        done = sum(self._total(s) if i < current else self.done.get(s, 0) for i, s in enumerate(order))
        train = min(1.0, done / total) if total else (1.0 if after_started else 0.0)
        if not self.after:
            return train
        finished = len(self.after_done) + (0.5 if after_started and self.stage not in self.after_done else 0)
        return (1 - AFTER_SHARE) * train + AFTER_SHARE * min(1.0, finished / len(self.after))

    def eta(self) -> tuple[float | None, float | None]:
        """(seconds left in this stage, seconds left in the run); None while unknown."""
        s = self.stage
        if s not in self.stage_epochs or not self.rate.get(s):
            return None, None
        stage_left = max(0, self._total(s) - self.done.get(s, 0)) / self.rate[s]
        total_left = stage_left
        order = list(self.stage_epochs)
        for later in order[order.index(s) + 1:]:
            left = max(0, self._total(later) - self.done.get(later, 0))
            rate = self.rate.get(later) or next((self.rate[o] for o in STUDENT_STAGES if later in STUDENT_STAGES
                                                 and self.rate.get(o)), None)
            if left and not rate:  # e.g. the teacher's speed says nothing about the student's: unknown, not wrong
                return stage_left, None
            total_left += left / rate if left else 0.0
        return stage_left, total_left
