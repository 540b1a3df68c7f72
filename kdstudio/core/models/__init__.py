"""The model zoo: built-in architectures by name, built for a data set's input shape and class count.

Names: the built-ins below; `torchvision:NAME` / `timm:NAME` when those packages import; `path/to/file.py:factory`
(runs that file, see custom.py). `shrink_spec` / `build_student` give "the same family at a width/depth multiplier".
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from .basic import build_cnn, build_mlp
from .mobilenet import PAPER_BLOCKS, build_mobilenetv2
from .resnet import RESNETS, resnet_builder
from .resnet import valid_depth as _resnet_depth
from .summary import format_summary, summary  # noqa: F401 - public
from .wrn import WRNS, wrn_builder
from .wrn import valid_depth as _wrn_depth

# name -> builder(num_classes, input_shape, width, depth) -> nn.Module; width/depth 0 mean "the arch's default".
Builder = Callable[[int, tuple, int, int], nn.Module]
# Metadata is what shrinking needs: family, default width and depth, depth_rule (rounds to a buildable depth).
ARCHS: Registry[Builder] = Registry("architecture")
ARCHS.register("mlp", build_mlp, family="mlp", width=256, depth=2, depth_rule=lambda d: max(1, d))
ARCHS.register("cnn", build_cnn, family="cnn", width=32, depth=3, depth_rule=lambda d: max(1, d))
ARCHS.register("mobilenetv2", build_mobilenetv2, family="mobilenetv2", width=16, depth=PAPER_BLOCKS,
               depth_rule=lambda d: max(7, d))
for _name, (_w, _d, _stem) in RESNETS.items():
    ARCHS.register(_name, resnet_builder(_name, _w, _d, _stem), family="resnet", width=_w, depth=_d,
                   depth_rule=_resnet_depth)
for _name, (_w, _d) in WRNS.items():
    ARCHS.register(_name, wrn_builder(_name, _w, _d), family="wrn", width=_w, depth=_d, depth_rule=_wrn_depth)


def register(name: str, builder: Builder, *, family: str | None = None, width: int = 0, depth: int = 0,
             depth_rule: Callable[[int], int] | None = None) -> None:
    """Add an architecture to the zoo; give family, default width/depth and depth_rule to let it shrink."""
    meta = {"family": family, "width": width, "depth": depth, "depth_rule": depth_rule} if depth_rule else {}
    ARCHS.register(name, builder, **meta)


def available(include_hub: bool = False) -> list[str]:
    """Names of every built-in architecture (plus torchvision:/timm: names that import here, if asked)."""
    names = list(ARCHS)
    if include_hub:
        from .hub import available as hub_available
        names += hub_available()
    return names


def catalog() -> list[dict]:
    """Built-in architectures as plain data for a dropdown: name, family, default width and depth, description."""
    out = []
    for name in ARCHS:
        meta, doc = ARCHS.meta(name), (ARCHS.get(name).__doc__ or "").strip().splitlines()
        out.append({"name": name, "family": meta.get("family") or name, "width": meta.get("width", 0),
                    "depth": meta.get("depth", 0), "doc": doc[0] if doc else ""})
    return out


def build(arch: str, num_classes: int, input_shape: tuple, width: int = 0, depth: int = 0) -> nn.Module:
    """Build `arch` for inputs of `input_shape` (C, H, W) or (F,) and `num_classes` outputs."""
    from .custom import build_custom, is_custom_name
    from .hub import build_hub, is_hub_name
    if is_hub_name(arch):
        return build_hub(arch, num_classes, tuple(input_shape), width, depth)
    if is_custom_name(arch):
        return build_custom(arch, num_classes, tuple(input_shape), width, depth)
    return ARCHS.get(arch)(num_classes, tuple(input_shape), width, depth)


def shrink_spec(arch: str, width_mult: float = 1.0, depth_mult: float = 1.0, width: int = 0,
                depth: int = 0) -> tuple[str, int, int]:
    """(arch, width, depth) of the same family at a width/depth multiplier (depth rounded to a valid value)."""
    if width_mult == 1.0 and depth_mult == 1.0:
        return arch, width, depth
    from .hub import is_hub_name
    if is_hub_name(arch):
        return _shrink_hub(arch, width_mult, depth_mult, width)
    meta = ARCHS.meta(arch) if arch in ARCHS else {}
    if not meta.get("depth_rule"):
        raise ConfigError(f"Architecture '{arch}' has no width/depth knobs to shrink; pick a built-in "
                          f"architecture or set the multipliers to 1.")
    if width_mult <= 0 or depth_mult <= 0:
        raise ConfigError(f"Width and depth multipliers must be above 0 (got {width_mult:g}, {depth_mult:g}).")
    dw, dd, rule = meta["width"], meta["depth"], meta["depth_rule"]
    return arch, max(1, round((width or dw) * width_mult)), rule(max(1, round((depth or dd) * depth_mult)))


def _shrink_hub(arch: str, width_mult: float, depth_mult: float, width: int) -> tuple[str, int, int]:
    """A torchvision/timm model's width is a percentage of the library's (hub.py); none has a depth knob."""
    from .hub import check_width_knob
    from .hub_width import depth_problem
    if depth_mult != 1.0:
        raise ConfigError(depth_problem(arch, f"depth_mult = {depth_mult:g}"))
    if width_mult <= 0:
        raise ConfigError(f"Width multipliers must be above 0 (got {width_mult:g}).")
    check_width_knob(arch)
    return arch, max(1, round((width or 100) * width_mult)), 0  # build_hub refuses it if the model has no knob


def student_spec(cfg) -> tuple[str, int, int]:
    """(arch, width, depth) of the configured student; arch "teacher" means the teacher's family and knobs."""
    s, t = cfg.student, cfg.teacher
    arch, width, depth = s.arch, s.width, s.depth
    if arch == "teacher":
        arch, width, depth = t.arch, width or t.width, depth or t.depth
    return shrink_spec(arch, getattr(s, "width_mult", 1.0), getattr(s, "depth_mult", 1.0), width, depth)


def build_student(cfg, num_classes: int, input_shape: tuple) -> nn.Module:
    """Build the configured student (handles student.arch = "teacher" and the width/depth multipliers)."""
    arch, width, depth = student_spec(cfg)
    return build(arch, num_classes, input_shape, width, depth)


def planned_counts(cfg, num_classes: int, input_shape: tuple) -> tuple[int, int] | None:
    """(teacher, student) parameter counts of the models a run will train, built on the meta device (no memory,
    no weights); None when the teacher comes from a file or a model cannot be built without running user code."""
    import torch
    from .custom import is_custom_name
    t = cfg.teacher
    if t.source != "train" or is_custom_name(t.arch) or is_custom_name(student_spec(cfg)[0]):
        return None  # a file.py arch runs its file: only the run itself does that, after its trust check
    try:
        with torch.device("meta"):
            teacher = build(t.arch, num_classes, input_shape, t.width, t.depth)
            student = build_student(cfg, num_classes, input_shape)
    except Exception:  # noqa: BLE001 - the stages report a model that cannot be built, with its sentence
        return None
    return count_params(teacher), count_params(student)


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

