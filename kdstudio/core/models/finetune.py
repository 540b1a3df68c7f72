"""Fine-tuning a loaded teacher: all but its last N layers with weights frozen (norm layers count with the
conv/linear they follow; frozen layers keep their batch-norm statistics), trained by a plain cross-entropy stage."""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError, KDError
from .teacher_formats import OnnxTeacher
from .teacher_io import NORMS, add_info, info


def _kind(m: nn.Module) -> str:
    return getattr(m, "original_name", type(m).__name__)


def layer_groups(model: nn.Module) -> list[list[str]]:
    """Layers with weights in definition order: each conv/linear/... with the norm layers that follow it."""
    groups: list[list[str]] = []
    for name, m in model.named_modules():
        if not name or any(True for _ in m.children()) or not any(True for _ in m.parameters(recurse=False)):
            continue
        if _kind(m) in NORMS and groups:
            groups[-1].append(name)
        else:
            groups.append([name])
    return groups


class FinetuneModel(nn.Module):
    """A teacher with all but its last N layers frozen; frozen layers stay in eval mode (batch-norm statistics
    included) even when the training loop calls .train()."""

    def __init__(self, model: nn.Module, trainable: list[str]):
        super().__init__()
        self.model = model
        self.trainable = trainable
        self.frozen = [n for grp in layer_groups(model) for n in grp if n not in trainable]

    def train(self, mode: bool = True):
        """Train mode for the unfrozen layers only."""
        super().train(mode)
        for name in self.frozen:
            self.model.get_submodule(name).eval()
        return self

    def forward(self, x):
        return self.model(x)


def prepare_finetune(teacher: nn.Module, layers: int) -> FinetuneModel:
    """Unfreeze the last `layers` layers with weights (norms count with their conv/linear) for training with a
    plain cross-entropy stage; everything else keeps its weights and statistics."""
    if isinstance(teacher, OnnxTeacher):
        raise KDError("An ONNX teacher cannot be fine-tuned (onnxruntime runs it, not PyTorch); set "
                      "teacher.finetune_layers = 0 or load the teacher as PyTorch weights.")
    groups = layer_groups(teacher)
    if layers < 1 or layers > len(groups):
        raise ConfigError(f"teacher.finetune_layers = {layers}, but the teacher has {len(groups)} layers with "
                          f"weights; choose 1 to {len(groups)}.", key="teacher.finetune_layers")
    trainable = [n for grp in groups[-layers:] for n in grp]
    head = info(teacher).get("new_head")
    if head and head not in trainable:
        trainable.append(head)
    for p in teacher.parameters():
        p.requires_grad_(False)
    for name in trainable:
        for p in teacher.get_submodule(name).parameters():
            p.requires_grad_(True)
    wrapped = FinetuneModel(teacher, trainable)
    wrapped.train()
    return wrapped


def finish_finetune(wrapped: FinetuneModel) -> nn.Module:
    """The fine-tuned teacher, in eval mode (the teacher stage freezes it for good in a FrozenTeacher)."""
    model = wrapped.model
    model.eval()
    add_info(model, finetuned_layers=list(wrapped.trainable))
    return model
