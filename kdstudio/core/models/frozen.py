"""The teacher as every stage sees it: frozen once, here, and kept so.

A teacher must stay in eval mode (batch-norm statistics and dropout fixed) and never collect gradients, in every
stage that runs it (distillation, the teacher-output cache, feature hooks, evaluation). `FrozenTeacher` owns that
invariant: it freezes the module when it is built and re-asserts eval mode on every call, so no later `.train()`
(a stage putting "all models" in train mode, a user's module) can bring the teacher back to training.
"""

from __future__ import annotations

import torch
from torch import nn


class FrozenTeacher:
    """A frozen teacher module: eval mode, no gradients; call it like the module. `.module` is the module itself
    (for layer names, feature hooks, parameter counts and evaluation)."""

    def __init__(self, module: nn.Module):
        if isinstance(module, FrozenTeacher):
            module = module.module
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        self.module = module

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.module.training:
            self.module.eval()
        with torch.no_grad():
            return self.module(x)

    def to(self, device) -> "FrozenTeacher":
        """Move the module (parameters stay frozen)."""
        self.module.to(device)
        return self

    def parameters(self):
        """The module's parameters (all frozen)."""
        return self.module.parameters()


def unwrap(model) -> nn.Module:
    """The module inside a FrozenTeacher (or the model itself)."""
    return model.module if isinstance(model, FrozenTeacher) else model
