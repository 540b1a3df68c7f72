"""Architectures from torchvision (`torchvision:resnet18`) and timm (`timm:<name>`), only where those packages
import. Models are always built with random weights: nothing is downloaded (a teacher's weights come from the
user's file, see teacher_io).

Width: `width` is a percentage of the library's own width (0 or 100 = as the library builds it) for the models
that have a real width knob (WIDTH_KNOBS, hub_width.py); every other hub model refuses a width or depth in one
sentence that says so and names what to do instead.
"""

from __future__ import annotations

import functools
import importlib

from torch import nn

from ..errors import ConfigError
from ..registry import close_names
from .hub_width import depth_problem, has_width_knob, width_kwargs, width_problem

PREFIXES = ("torchvision", "timm")
INSTALL = 'pip install "kdstudio[vision]"'
_FAILURES: dict[str, str] = {}  # package -> why it did not import ("" = not installed at all)


@functools.lru_cache(maxsize=None)
def _package(name: str):
    """The imported package, or None when it is missing or broken (PyPI's torchvision beside a CPU-only torch
    fails at import with 'operator torchvision::nms does not exist'); the reason is kept for `unusable`."""
    try:
        return importlib.import_module(f"{name}.models") if name == "torchvision" else importlib.import_module(name)
    except ModuleNotFoundError as e:
        _FAILURES[name] = "" if (e.name or "").split(".")[0] == name else _first_line(e)
    except Exception as e:  # noqa: BLE001 - any import failure means "not usable here"; its reason is kept
        _FAILURES[name] = _first_line(e)
    return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__


def unusable(prefix: str, arch: str) -> str:
    """The sentence for an `arch` whose package does not import: not installed, or installed but broken."""
    reason = _FAILURES.get(prefix, "")
    if not reason:
        return (f"Architecture '{arch}' needs the '{prefix}' package, which is not installed; install it with "
                f"`{INSTALL}` (torchvision and timm), or pick a built-in architecture.")
    import torch
    return (f"Architecture '{arch}' needs the '{prefix}' package, which is installed but does not match this "
            f"PyTorch build ({torch.__version__}: {reason}); install the {prefix} release made for this PyTorch "
            f"(`{INSTALL}` in a fresh environment, or the wheel from pytorch.org for your CUDA/CPU build), or "
            "pick a built-in architecture.")


def installed() -> list[str]:
    """Which hub packages import here."""
    return [p for p in PREFIXES if _package(p) is not None]


def is_hub_name(arch: str) -> bool:
    """Whether `arch` is of the form `torchvision:NAME` or `timm:NAME`."""
    return arch.split(":", 1)[0] in PREFIXES and ":" in arch


@functools.lru_cache(maxsize=None)
def names(prefix: str) -> tuple[str, ...]:
    """Classification model names a hub package offers (empty when it is not installed)."""
    pkg = _package(prefix)
    if pkg is None:
        return ()
    try:
        try:  # torchvision lists detection and video models too; module= keeps the image classifiers
            listed = pkg.list_models(module=pkg) if prefix == "torchvision" else pkg.list_models()
        except TypeError:
            listed = pkg.list_models()
        return tuple(sorted(listed))
    except Exception:  # noqa: BLE001
        return ()


def available() -> list[str]:
    """Every `prefix:name` that can be built here."""
    return [f"{p}:{n}" for p in installed() for n in names(p)]


def split_name(arch: str) -> tuple[str, str, object]:
    """(prefix, model name, package) of a hub arch; ConfigError when the package does not import or the library
    has no such model (naming the closest names of its list)."""
    prefix, name = arch.split(":", 1)
    pkg = _package(prefix)
    if pkg is None:
        raise ConfigError(unusable(prefix, arch))
    known = names(prefix)
    base = name.split(".", 1)[0] if prefix == "timm" else name  # timm: "resnet18.a1_in1k" names a weights tag
    if known and base not in known:
        lister = "torchvision.models.list_models()" if prefix == "torchvision" else "timm.list_models()"
        near = close_names(base, known, n=3)
        hint = (f"; the closest are {', '.join(repr(f'{prefix}:{n}') for n in near)} ({lister} lists them all)"
                if near else f"; {lister} lists its models")
        kind = "image-classification model" if prefix == "torchvision" else "model"
        raise ConfigError(f"{prefix} has no {kind} named '{name}'{hint}.")
    return prefix, name, pkg


def _create(prefix: str, name: str, pkg, num_classes: int, input_shape: tuple, **kwargs) -> nn.Module:
    if prefix == "torchvision":
        return pkg.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    in_chans = input_shape[0] if len(input_shape) == 3 else 3
    return pkg.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


def build_hub(arch: str, num_classes: int, input_shape: tuple, width: int = 0, depth: int = 0) -> nn.Module:
    """Build a torchvision or timm model with random weights for `num_classes` outputs; `width` in percent of the
    library's width (0 = as the library builds it), only for models with a width knob."""
    prefix, name, pkg = split_name(arch)
    if depth:
        raise ConfigError(depth_problem(arch, f"a depth of {depth}"))
    try:
        model = _create(prefix, name, pkg, num_classes, input_shape)
        if width and width != 100:
            kwargs = width_kwargs(prefix, name, model, width / 100, names(prefix))  # ConfigError: no knob
            model = _create(prefix, name, pkg, num_classes, input_shape, **kwargs)
        return model
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"Could not build '{arch}': {_first_line(e)}.") from None


def check_width_knob(arch: str) -> None:
    """ConfigError (naming what to do instead) when the hub model `arch` has no width knob."""
    prefix, name, _ = split_name(arch)
    if not has_width_knob(prefix, name):
        raise ConfigError(width_problem(prefix, name, names(prefix)))
