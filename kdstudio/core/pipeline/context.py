"""What every stage of a run receives (the context) and what each returns (typed results).

The context is read-only to the stages: the config, the device, the data on the device, the stop/pause control,
the event emitter, the run folder. Stages return their results; the engine alone assembles the summary from them
(`results.to_summary`), so summary.json has one author.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from .. import events as ev
from ..config import Config
from ..store.files import RunDir
from ..store.summary import ModelEntry, StageTiming, Summary
from ..train.checkpoints import read_checkpoint, restore
from ..train.hooks import GradClip
from ..train.loop import StageResult, StageRunner, StageSpec


class Split(NamedTuple):
    """Inputs and labels of one split, on the run's device."""

    x: torch.Tensor
    y: torch.Tensor


@dataclass
class DeviceData:
    """The data set as the stages use it: its description (`bundle`) and its splits on the device."""

    bundle: object              # data.DataBundle: names, shapes, normalisation, the CPU tensors
    train: Split
    val: Split
    test: Split

    @classmethod
    def to_device(cls, bundle, device: torch.device) -> "DeviceData":
        """Move every split of a DataBundle to `device` once (the resident path: data lives on the device). Streamed
        inputs stay where they are (their `to` is a no-op: batches move as the workers read them); labels move."""
        def to(t):
            return t.to(device, non_blocking=True)
        b = bundle
        return cls(b, Split(to(b.x_train), to(b.y_train)), Split(to(b.x_val), to(b.y_val)),
                   Split(to(b.x_test), to(b.y_test)))

    @property
    def num_classes(self) -> int:
        """Classes of the data set."""
        return self.bundle.num_classes

    @property
    def input_shape(self) -> tuple:
        """Shape of one input."""
        return tuple(self.bundle.input_shape)


@dataclass
class RunContext:
    """The fixed surroundings of one run."""

    cfg: Config
    rd: RunDir
    device: torch.device
    amp_dtype: torch.dtype | None
    data: DeviceData
    control: ev.RunControl
    emit: ev.Emitter
    resume: bool = False
    previous: Summary | None = None     # summary.json as it was before a resume
    stage: str | None = None            # the stage running now (for messages)
    teachers: object = None             # store.teachers.TeacherStore: where trained teachers are kept (None: not kept)
    reused_teacher: object = None       # store.teachers.StoredTeacher this run uses instead of training one
    baseline_from: object = None        # (folder, name) of an earlier sweep run whose baseline this run takes
    teacher_key: tuple | None = None    # pipeline.reuse.teacher_key(cfg), computed once (it walks data folders)

    def begin(self, name: str, **info) -> None:
        """A stage starts."""
        self.stage = name
        self.emit(ev.STAGE_STARTED, name, **info)

    def finish(self, name: str, **info) -> None:
        """A stage ended."""
        self.emit(ev.STAGE_FINISHED, name, **info)

    def log(self, message: str, stage: str | None = None, **extra) -> None:
        """An informational line from the current stage."""
        self.emit(ev.LOG, stage or self.stage, message=message, **extra)

    def warn(self, message: str, stage: str | None = None) -> None:
        """A warning from the current stage."""
        self.emit(ev.WARNING, stage or self.stage, message=message)

    def completed_checkpoint(self, name: str) -> dict | None:
        """A stage's checkpoint when the stage already finished in this folder (resume), else None."""
        path = self.rd.checkpoint(name)
        if self.resume and path.is_file():
            state = read_checkpoint(path, self.device)
            if state.get("complete"):
                return state
        return None

    def train(self, spec: StageSpec, checkpoint=None, seed_offset: int = 17, hooks=()) -> StageResult:
        """Run one training stage on the training split, resuming from its checkpoint when there is one."""
        spec.model.to(self.device)
        if self.device.type == "cuda" and self.data.train.x.dim() == 4:
            spec.model.to(memory_format=torch.channels_last)
        ckpt = checkpoint or self.rd.checkpoint(spec.name)
        runner = StageRunner(spec, x=self.data.train.x, y=self.data.train.y, x_val=self.data.val.x,
                             y_val=self.data.val.y, device=self.device, amp_dtype=self.amp_dtype, emit=self.emit,
                             control=self.control, checkpoint_path=ckpt, seed=self.cfg.seed + seed_offset,
                             hooks=list(hooks), cache_dir=self.rd.root / "cache")
        if self.resume and ckpt.is_file():
            restore(runner, read_checkpoint(ckpt, self.device), ckpt)
            self.log(f"Resumed {spec.name} at epoch {runner.epoch + 1}, step {runner.step_in_epoch + 1}.", spec.name)
        return runner.run()


def stage_spec(ctx: "RunContext", name: str, model, objective, epochs: int, lr: float, **extra) -> StageSpec:
    """A StageSpec with the run's optimizer, schedule, batch and augmentation settings."""
    cfg = ctx.cfg
    return StageSpec(name, model, objective, epochs, lr, cfg.distill.optimizer, cfg.distill.weight_decay,
                     cfg.distill.scheduler, cfg.data.batch_size, augment=cfg.data.augment,
                     log_every=cfg.distill.log_every, cache_dtype=cfg.distill.cache_dtype,
                     keep_cache=cfg.distill.keep_cache, **extra)


def clip_hooks(ctx: "RunContext") -> list:
    """Gradient clipping, which every training stage gets (teacher and fine-tunes too)."""
    return [GradClip(ctx.cfg.distill.grad_clip)] if ctx.cfg.distill.grad_clip > 0 else []


# ---- what the stages return -----------------------------------------------------------------------------

@dataclass
class TeacherResult:
    """The frozen teacher and what the summary says of it."""

    teacher: object             # models.FrozenTeacher
    entry: ModelEntry


@dataclass
class StudentResult:
    """A trained student (distilled or baseline), its summary entry and its stage's timing (None when the stage
    had finished before a resume and was loaded)."""

    model: nn.Module
    entry: ModelEntry
    timing: StageResult | None
    best_model: nn.Module | None = None     # the best-on-validation weights, when the stage kept them


@dataclass
class Variant:
    """A compression variant of the student (finetune, prune, channels, int8, fp16/bf16)."""

    name: str
    model: nn.Module
    record: dict                # what summary.json keeps: name, parent, step, plan, quant/half, sparsity

    @property
    def is_float(self) -> bool:
        """True for the variants later steps start from (not int8, not half)."""
        return not self.record.get("quant") and not self.record.get("half")

    @property
    def plan(self) -> dict:
        """The channel plan the variant's shapes follow ({} unless channel-pruned)."""
        return self.record.get("plan") or {}


@dataclass
class RunResults:
    """Everything the stages returned so far; the summary is built from it alone."""

    device: str | None = None
    data: dict | None = None          # how the inputs were read (summary's "data")
    teacher: TeacherResult | None = None
    student: StudentResult | None = None
    baseline: StudentResult | None = None
    distill_timing: StageTiming | None = None
    compress_steps: list[str] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=list)
    evaluation: tuple[dict, list, dict | None] | None = None  # (per-model metrics, table, KD gain's paired test)
    exports: list[dict] = field(default_factory=list)
    export_failed: list[dict] = field(default_factory=list)

    def to_summary(self, base: Summary) -> Summary:
        """Fill `base` (status and times set by the engine) from the results."""
        s = base
        s.device = self.device
        s.data = self.data
        s.teacher = self.teacher.entry if self.teacher else None
        s.student = self.student.entry if self.student else None
        s.baseline = self.baseline.entry if self.baseline else None
        s.distill = self.distill_timing
        if self.compress_steps:
            s.compress = {"steps": list(self.compress_steps), "variants": [v.record for v in self.variants]}
        if self.evaluation is not None:
            s.apply_evaluation(*self.evaluation)
        s.exports, s.export_failed = list(self.exports), list(self.export_failed)
        return s
