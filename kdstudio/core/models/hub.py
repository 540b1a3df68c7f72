"""Architectures from torchvision (`torchvision:resnet18`) and timm (`timm:<name>`), only where those packages
import. Models are always built with random weights: nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib

from torch import nn

from ..errors import ConfigError
from ..registry import nearest

PREFIXES = ("torchvision", "timm")


@functools.lru_cache(maxsize=None)
def _package(name: str):
    """The imported package, or None when it is missing or broken (PyPI's torchvision beside a CPU-only torch
    fails at import with 'operator torchvision::nms does not exist')."""
    try:
        return importlib.import_module(f"{name}.models") if name == "torchvision" else importlib.import_module(name)
    except Exception:  # noqa: BLE001 - any import failure means "not usable here"
        return None


def installed() -> list[str]:
    """Which hub packages import here."""
    return [p for p in PREFIXES if _package(p) is not None]


def is_hub_name(arch: str) -> bool:
    """Whether `arch` is of the form `torchvision:NAME` or `timm:NAME`."""
    return arch.split(":", 1)[0] in PREFIXES and ":" in arch


@functools.lru_cache(maxsize=None)
def names(prefix: str) -> tuple[str, ...]:
    """Model names a hub package offers (empty when it is not installed)."""
    pkg = _package(prefix)
    if pkg is None:
        return ()
    try:
        return tuple(sorted(pkg.list_models()))
    except Exception:  # noqa: BLE001
        return ()


def available() -> list[str]:
    """Every `prefix:name` that can be built here."""
    return [f"{p}:{n}" for p in installed() for n in names(p)]


def build_hub(arch: str, num_classes: int, input_shape: tuple, width: int = 0, depth: int = 0) -> nn.Module:
    """Build a torchvision or timm model with random weights for `num_classes` outputs."""
    prefix, name = arch.split(":", 1)
    pkg = _package(prefix)
    if pkg is None:
        raise ConfigError(f"Architecture '{arch}' needs the '{prefix}' package, which is not installed or does not "
                          f"import here; install a build that matches your PyTorch, or pick a built-in arch.")
    known = names(prefix)
    if known and name not in known:
        near = nearest(name, known)
        lister = "torchvision.models.list_models()" if prefix == "torchvision" else "timm.list_models()"
        hint = f" Did you mean '{prefix}:{near}'?" if near else f" {lister} lists its models."
        raise ConfigError(f"{prefix} has no model named '{name}'.{hint}")
    try:
        if prefix == "torchvision":
            return pkg.get_model(name, weights=None, num_classes=num_classes)
        in_chans = input_shape[0] if len(input_shape) == 3 else 3
        return pkg.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"Could not build '{arch}': {str(e).splitlines()[0] if str(e) else type(e).__name__}.")
