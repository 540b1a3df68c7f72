"""Qt-free data behind the plots and the progress bar: a run's curves and its ETA.

Both are fed the same records: live engine events (as `{"kind", "stage", **data}`) or the lines of a finished
run's metrics.jsonl, so a past run replays through exactly the code that drew it live.
"""

from __future__ import annotations

import math
import time

from ..core.events import terms_of
from .stage_costs import evaluate_from_speed

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
AFTER_SHARE = 0.05  # of the bar for the stages after training while their cost is unknown (evaluate, export)
AFTER_CAP = 0.5     # however long they are estimated to take, training keeps at least half of the bar
MODEL_STAGES = ("baseline", "compress")  # besides teacher and student, each adds a model that evaluate measures


class Progress:
    """Overall progress and ETA of a run: its training stages from STEP events, then evaluate and export from an
    estimate of their cost in seconds (stage_costs.py), so the bar and the ETA count them as what they take."""

    def __init__(self, stage_epochs: dict[str, int], clock=time.time, after: list[str] | None = None,
                 after_seconds: dict[str, float | None] | None = None):
        self.stage_epochs = dict(stage_epochs)   # training stage -> epochs, in pipeline order
        self.after = list(after or [])           # stages after training (evaluate, export), counted in the bar
        self.after_done: set[str] = set()
        # evaluate/export -> estimated seconds (None: unknown); evaluate's may come from the training speed later
        self.after_seconds: dict[str, float | None] = {s: (after_seconds or {}).get(s) for s in self.after}
        self.after_source: dict[str, str] = {s: "earlier runs" for s, v in self.after_seconds.items() if v}
        self.eval_models = 2                     # teacher and student, plus a baseline and variants when planned
        self.eval_samples = 0                    # test samples evaluate goes through (0: not in the plan)
        self.clock = clock                       # the events' clock (time.time), so after-stage elapsed time fits
        self.steps_per_epoch: int | None = None
        self.done: dict[str, int] = {s: 0 for s in stage_epochs}
        self.rate: dict[str, float] = {}         # steps per second, smoothed
        self.stage: str | None = None
        self.stage_began: float | None = None    # when the current stage started (after stages' elapsed time)
        self.epoch = self.epochs = 0
        self.samples_per_s = 0.0
        self.student_samples_per_s = 0.0         # the last speed of a student stage (evaluate's fallback estimate)
        self._last: tuple[float, int] | None = None
        self._shown = 0.0                        # the bar never goes back when an estimate changes

    @classmethod
    def from_plan(cls, stages: list[dict], clock=time.time, past=None) -> "Progress":
        """The stages of a run's plan (RUN_STARTED / MEMBER_STARTED): stages that train count in steps, evaluate
        and export in estimated seconds (`past`: stage_costs.PastCosts of the project's earlier runs); stages
        finished before a resume count as done."""
        training = [s for s in stages if int(s.get("epochs") or 0) > 0]
        later = [s for s in stages if not int(s.get("epochs") or 0) and s["name"] in ("evaluate", "export")]
        names = {s["name"] for s in stages}
        models = 2 + sum(1 for m in MODEL_STAGES if m in names)
        seconds = {}
        for s in later:
            if past is not None:
                seconds[s["name"]] = past.evaluate(models) if s["name"] == "evaluate" else \
                    past.export(list(s.get("formats") or []))
        p = cls({s["name"]: int(s["epochs"]) for s in training}, clock=clock, after=[s["name"] for s in later],
                after_seconds=seconds)
        p.eval_models = models
        p.eval_samples = next((int(s.get("samples") or 0) for s in later if s["name"] == "evaluate"), 0)
        steps = next((int(s["steps"]) for s in training if s.get("steps")), None)
        p.steps_per_epoch = steps
        for s in training:
            if s.get("done") and steps:
                p.done[s["name"]] = int(s["epochs"]) * steps
        return p

    def stage_started(self, stage: str, when: float | None = None) -> None:
        """A new stage began (`when`: the event's time)."""
        self.stage, self._last = stage, None
        self.stage_began = self.clock() if when is None else when
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
        if stage in STUDENT_STAGES and self.samples_per_s > 0:
            self.student_samples_per_s = self.samples_per_s

    # ---- what is left --------------------------------------------------------------------------------------
    def after_estimate(self, stage: str) -> float | None:
        """Seconds `stage` (evaluate or export) is estimated to take: from earlier runs, else (evaluate) from this
        run's training speed; None while unknown."""
        seconds = self.after_seconds.get(stage)
        if seconds is None and stage == "evaluate" and self.eval_samples:
            seconds = evaluate_from_speed(self.eval_models, self.eval_samples, self.student_samples_per_s)
            if seconds is not None:
                self.after_source[stage] = "this run's speed"
        return seconds

    def _total(self, stage: str) -> int:
        return self.stage_epochs.get(stage, 0) * (self.steps_per_epoch or 0)

    def _rate_of(self, stage: str) -> float | None:
        """Steps per second of a training stage: its own, else a stage that trains the same student."""
        return self.rate.get(stage) or next((self.rate[o] for o in STUDENT_STAGES if stage in STUDENT_STAGES
                                             and self.rate.get(o)), None)

    def _train_seconds(self) -> float | None:
        """The training stages' whole time at the measured speeds; None while a stage's speed is unknown."""
        total = 0.0
        for s in self.stage_epochs:
            steps = self._total(s)
            if steps and self.done.get(s, 0) < steps:
                rate = self._rate_of(s)
                if not rate:
                    return None
                total += steps / rate
        done = sum(self._total(s) / self.rate[s] for s in self.stage_epochs
                   if self.rate.get(s) and self.done.get(s, 0) >= self._total(s))
        return total + done

    def _after_left(self, stage: str) -> float | None:
        """Seconds left in an after stage (its estimate less the time it has run); 0 once done."""
        if stage in self.after_done:
            return 0.0
        est = self.after_estimate(stage)
        if est is None:
            return None
        ran = max(0.0, self.clock() - self.stage_began) if self.stage == stage and self.stage_began else 0.0
        return max(0.0, est - ran)

    def _after_share(self) -> tuple[float, float]:
        """(the after stages' share of the bar, the part of it done): by their estimated seconds against the
        training time when both are known, else AFTER_SHARE split evenly."""
        ests = [self.after_estimate(s) for s in self.after]
        train = self._train_seconds()
        if all(e is not None for e in ests) and train:
            total = sum(ests)
            share = min(AFTER_CAP, total / (train + total)) if total > 0 else 0.0
            left = sum(self._after_left(s) or 0.0 for s in self.after)
            return share, (1 - left / total) if total > 0 else float(len(self.after_done) == len(self.after))
        started = self.stage in self.after and self.stage not in self.after_done
        return AFTER_SHARE, min(1.0, (len(self.after_done) + 0.5 * started) / len(self.after))

    def fraction(self) -> float:
        """Share of the run done, in [0, 1]: training steps (stages before the current one count as done), then
        evaluate and export by their estimated time, so the bar is full only when the run is."""
        total = sum(self._total(s) for s in self.stage_epochs)
        order = list(self.stage_epochs)
        after_started = self.stage in self.after
        current = order.index(self.stage) if self.stage in order else (len(order) if self.stage else 0)
        done = sum(self._total(s) if i < current else self.done.get(s, 0) for i, s in enumerate(order))
        train = min(1.0, done / total) if total else (1.0 if after_started else 0.0)
        if not self.after:
            return train
        share, after_done = self._after_share()
        self._shown = max(self._shown, (1 - share) * train + share * after_done)
        return min(1.0, self._shown)

    def eta(self) -> tuple[float | None, float | None]:
        """(seconds left in this stage, seconds left in the run); None while unknown. Evaluate and export count by
        their estimates; one that is still unknown is left out of the run's ETA (as they were before)."""
        s = self.stage
        if s in self.after:
            stage_left = self._after_left(s)
            if stage_left is None:
                return None, None
            rest = [self._after_left(o) for o in self.after[self.after.index(s) + 1:]]
            return stage_left, stage_left + sum(r for r in rest if r is not None)
        if s not in self.stage_epochs or not self.rate.get(s):
            return None, None
        stage_left = max(0, self._total(s) - self.done.get(s, 0)) / self.rate[s]
        total_left = stage_left
        order = list(self.stage_epochs)
        for later in order[order.index(s) + 1:]:
            left = max(0, self._total(later) - self.done.get(later, 0))
            rate = self._rate_of(later)
            if left and not rate:  # e.g. the teacher's speed says nothing about the student's: unknown, not wrong
                return stage_left, None
            total_left += left / rate if left else 0.0
        return stage_left, total_left + sum(self._after_left(a) or 0.0 for a in self.after)
