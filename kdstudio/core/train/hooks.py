"""Training extras as small plug-ins of the stage loop, not edits of its step.

`StageRunner` calls each hook at four points: before a step (`before_step`), after the backward pass and before
the optimizer step (`after_backward`), after the optimizer step (`after_step`), and at an epoch's end after
validation (`epoch_end`). A hook with state (`state_dict` / `load_state_dict`) is saved in the stage's checkpoint,
so a resumed stage continues it exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn


class TrainHook:
    """Base class: every point is a no-op; `name` keys the hook's state in the checkpoint."""

    name = "hook"

    def before_step(self, runner, idx: torch.Tensor) -> None:
        """Before a step's forward pass."""

    def after_backward(self, runner) -> None:
        """After backward, before the optimizer step (gradients are there)."""

    def after_step(self, runner) -> None:
        """After the optimizer step."""

    def epoch_end(self, runner, val_acc: float) -> None:
        """After an epoch's validation."""

    def state_dict(self) -> dict | None:
        """State to keep in the checkpoint (None: nothing)."""
        return None

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict returned."""


class GradClip(TrainHook):
    """Clip the global gradient norm to `max_norm`; under fp16 AMP the gradients are unscaled first, so the norm
    is the true one (the GradScaler then skips unscaling again)."""

    name = "grad_clip"

    def __init__(self, max_norm: float):
        self.max_norm = float(max_norm)
        self._params: list | None = None  # the optimizer's parameters, listed once (not in every step)

    def after_backward(self, runner) -> None:
        if runner.scaler is not None:
            runner.scaler.unscale_(runner.opt)
        if self._params is None:
            self._params = [p for g in runner.opt.param_groups for p in g["params"]]
        # sync-free: the norm stays on the device and scales the gradients by min(1, max_norm / norm)
        torch.nn.utils.clip_grad_norm_(self._params, self.max_norm, foreach=True)


class WeightEMA(TrainHook):
    """An exponential moving average of the model's weights (torch.optim.swa_utils.AveragedModel with an EMA
    update), swapped into the model when the stage ends: the stage's result is the averaged model."""

    name = "ema"

    def __init__(self, model: nn.Module, decay: float):
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        self.decay = float(decay)
        self.average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)

    def after_step(self, runner) -> None:
        self.average.update_parameters(runner.s.model)

    def apply_to(self, model: nn.Module) -> None:
        """Copy the averaged weights (and buffers) into `model`."""
        model.load_state_dict(self.average.module.state_dict())

    def state_dict(self) -> dict:
        return self.average.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state)


class BestOnValidation(TrainHook):
    """Keep the weights of the epoch with the best validation accuracy in `path` (checkpoints/<stage>.best.pt),
    written atomically when an epoch beats the best so far."""

    name = "best"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.best_acc, self.best_epoch = -math.inf, 0

    def epoch_end(self, runner, val_acc: float) -> None:
        if not isinstance(val_acc, float) or not math.isfinite(val_acc) or val_acc <= self.best_acc:
            return
        from ..store.files import atomic_save_buffered
        self.best_acc, self.best_epoch = val_acc, runner.epoch + 1
        state = {"model": runner.s.model.state_dict(), "epoch": self.best_epoch, "val_acc": val_acc}
        from .distributed import is_main
        if is_main():  # under DDP rank 0 alone writes the run folder
            atomic_save_buffered(self.path, lambda buf: torch.save(state, buf))

    def state_dict(self) -> dict:
        return {"best_acc": self.best_acc, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best_acc, self.best_epoch = float(state["best_acc"]), int(state["best_epoch"])


def student_hooks(cfg, model: nn.Module, best_path: Path, has_validation: bool) -> list[TrainHook]:
    """The hooks a student stage (distill, baseline) uses under `cfg`: gradient clipping, weight EMA, the best
    checkpoint (only with a validation split to choose on)."""
    d = cfg.distill
    hooks: list[TrainHook] = []
    if d.grad_clip > 0:
        hooks.append(GradClip(d.grad_clip))
    if d.ema > 0:
        hooks.append(WeightEMA(model, d.ema))
    if has_validation:
        hooks.append(BestOnValidation(best_path))
    return hooks
