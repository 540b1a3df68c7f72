"""The model zoo: built-in architectures by name, built for a data set's input shape and class count."""

from __future__ import annotations

import difflib
from typing import Callable

from torch import nn

from ..errors import ConfigError
from .basic import build_cnn, build_mlp

# name -> builder(num_classes, input_shape, width, depth) -> nn.Module; width/depth 0 mean "the arch's default".
Builder = Callable[[int, tuple, int, int], nn.Module]
ARCHS: dict[str, Builder] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
}


def register(name: str, builder: Builder) -> None:
    """Add an architecture to the zoo."""
    ARCHS[name] = builder


def available() -> list[str]:
    """Names of every architecture that can be built here."""
    return sorted(ARCHS)


def build(arch: str, num_classes: int, input_shape: tuple, width: int = 0, depth: int = 0) -> nn.Module:
    """Build `arch` for inputs of `input_shape` (C, H, W) or (F,) and `num_classes` outputs."""
    if arch not in ARCHS:
        near = difflib.get_close_matches(arch, list(ARCHS), n=1, cutoff=0.5)
        hint = f" Did you mean '{near[0]}'?" if near else f" Available: {', '.join(available())}."
        raise ConfigError(f"Unknown architecture '{arch}'.{hint}")
    return ARCHS[arch](num_classes, tuple(input_shape), width, depth)


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def freeze(model: nn.Module) -> nn.Module:
    """Put a model in eval mode with no parameter needing grad (how teachers are held)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def param_bytes(model: nn.Module) -> int:
    """Bytes of parameters and buffers in memory."""
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
