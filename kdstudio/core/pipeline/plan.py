"""The plan of a run, announced in RUN_STARTED: every stage in order, which of them train and for how long.

The CLI progress, the GUI progress bar and the ETA render this plan instead of re-deriving it from the config
(a teacher loaded from a file trains no epochs; a resumed run has stages already done). A sweep's plan lists every
point × seed, each with its own stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..train.batches import steps_per_epoch


@dataclass
class PlannedStage:
    """One stage: `epochs` × `steps` optimizer steps when it trains (0 for evaluate, export, a loaded teacher)."""

    name: str
    epochs: int = 0
    steps: int = 0              # per epoch
    done: bool = False          # finished before a resume
    samples: int = 0            # evaluate: the test samples each model goes through (its cost, for the ETA)
    formats: list[str] = field(default_factory=list)  # export: the formats it writes

    @property
    def total_steps(self) -> int:
        """Optimizer steps the stage takes from start to end."""
        return self.epochs * self.steps

    def to_dict(self) -> dict:
        """Plain form for the event."""
        return {"name": self.name, "epochs": self.epochs, "steps": self.steps, "done": self.done,
                "samples": self.samples, "formats": list(self.formats)}


@dataclass
class PlannedRun:
    """The stages of one run (a sweep member has its point and seed)."""

    stages: list[PlannedStage]
    point: dict = field(default_factory=dict)
    seed: int | None = None
    label: str = ""

    def to_dict(self) -> dict:
        """Plain form for the event."""
        return {"stages": [s.to_dict() for s in self.stages], "point": dict(self.point), "seed": self.seed,
                "label": self.label}


@dataclass
class RunPlan:
    """Every run the entry point will do: one for a single run, points × seeds for a sweep."""

    runs: list[PlannedRun]
    sweep: bool = False

    @property
    def description(self) -> str:
        """'teacher 15 epochs, distill 60, baseline 60, then evaluate, export' (and the sweep's size); a training
        stage done already (a resume, a reused teacher) is named at the end: '(teacher done)'."""
        first = self.runs[0] if self.runs else PlannedRun([])
        trains = [f"{s.name} {s.epochs} epoch{'s' if s.epochs != 1 else ''}" for s in first.stages
                  if s.epochs and not s.done]
        rest = [s.name for s in first.stages if not s.epochs]
        done = [s.name for s in first.stages if s.epochs and s.done]
        text = ", ".join(trains)
        if rest:
            text = f"{text}, then {', '.join(rest)}" if text else ", ".join(rest)
        text += f" ({', '.join(done)} done)" if done else ""
        if self.sweep:
            text = f"{len(self.runs)} runs (points × seeds), each: {text}"
        return text

    def to_dict(self) -> dict:
        """Plain form for RUN_STARTED."""
        return {"sweep": self.sweep, "runs": [r.to_dict() for r in self.runs], "description": self.description}


def plan_run(cfg, n_train: int, done: set[str] | frozenset = frozenset(), n_test: int = 0) -> PlannedRun:
    """The stages one config will run on a training split of n_train samples and a test split of n_test (`done`:
    finished before a resume)."""
    steps = steps_per_epoch(n_train, cfg.data.batch_size)
    t, c = cfg.teacher, cfg.compress
    teacher_epochs = t.epochs if t.source == "train" else (t.finetune_epochs if t.finetune_layers else 0)
    stages = [PlannedStage("teacher", teacher_epochs, steps), PlannedStage("distill", cfg.distill.epochs, steps)]
    if cfg.baseline.enabled:
        stages.append(PlannedStage("baseline", cfg.distill.epochs, steps))
    if c.finetune_epochs > 0:
        stages.append(PlannedStage("finetune", c.finetune_epochs, steps))
    pruned = (c.prune > 0) + (c.channel_prune > 0)
    if pruned or c.int8 != "none" or c.half != "none":
        stages.append(PlannedStage("compress", pruned * c.prune_finetune_epochs, steps))
    stages.append(PlannedStage("evaluate", samples=n_test))
    if cfg.export.formats:
        stages.append(PlannedStage("export", formats=list(cfg.export.formats)))
    for s in stages:
        s.done = s.name in done
    return PlannedRun(stages, seed=cfg.seed)
