"""What one training stage is: its spec (model, objective, budget, optimizer settings), its result, and the
optimizer and schedule every stage builds from them. The loop that runs a spec is loop.py."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


class CrossEntropy(nn.Module):
    """Plain supervised objective for teacher training and the from-scratch baseline: terms "ce", "total"."""

    uses_features = False

    def forward(self, student_logits, teacher_logits, targets, *, epoch: int = 0):
        ce = F.cross_entropy(student_logits.float(), targets)
        return {"ce": ce, "total": ce}


@dataclass
class StageSpec:
    """What one stage trains and how."""

    name: str
    model: nn.Module
    objective: nn.Module
    epochs: int
    lr: float
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    batch_size: int = 64
    augment: str = "none"
    mixup: float = 0.0
    teacher: nn.Module | None = None
    cache_teacher: bool = True
    log_every: int = 20
    compile: bool = False
    cache_dtype: str = "fp16"       # the disk cache of streamed data
    keep_cache: bool = False
    extra_params: list = field(default_factory=list)


@dataclass
class StageResult:
    """Outcome of a finished stage."""

    epochs: int
    samples_per_s: float
    wall_s: float
    val_accuracy: float
    teacher_cache: bool
    timed_epochs: float = 0.0  # epochs the speed and wall time cover (fewer after a resume mid-stage)


def make_optimizer(name: str, params, lr: float, weight_decay: float, device: torch.device):
    """AdamW / Adam / SGD (fused kernels on CUDA)."""
    fused = {"fused": True} if device.type == "cuda" else {}
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=weight_decay, **fused)


def make_scheduler(name: str, optimizer, total_steps: int):
    """Per-step schedule: cosine to zero, step (x0.1 at 50% and 75%), or constant."""
    total = max(1, total_steps)
    if name == "cosine":
        fn = lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))  # noqa: E731
    elif name == "step":
        fn = lambda s: 0.1 ** ((s >= 0.5 * total) + (s >= 0.75 * total))  # noqa: E731
    else:
        fn = lambda s: 1.0  # noqa: E731
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
