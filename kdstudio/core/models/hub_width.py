"""The width knobs torchvision and timm really have, for "the teacher's family at a fraction of the width".

Checked against torchvision 0.29 and timm 1.0 by building each model and counting its parameters (other
torchvision builders take `width_mult` but ignore it, e.g. ConvNeXt; timm's efficientnet/mobilenetv3 fix their
channel multiplier inside the entry point and name their widths instead, e.g. mobilenetv3_small_050):

- torchvision mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large: `width_mult`;
- timm ResNet family (resnet*, resnext*, seresnet*, ...): `channels`, the four stage widths;
- timm ConvNeXt family: `dims`, the four stage widths.
"""

from __future__ import annotations

import re

from torch import nn

from ..errors import ConfigError

TORCHVISION_WIDTH_MULT = ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")
TIMM_STAGE_WIDTHS = {"ResNet": "channels", "ConvNeXt": "dims"}  # model class -> the keyword of its stage widths


def _timm_stage_widths(model: nn.Module) -> tuple[int, ...] | None:
    """The stage widths a timm ResNet/ConvNeXt was built with, read from the model (variants set their own)."""
    info = [f["num_chs"] for f in getattr(model, "feature_info", [])]
    if type(model).__name__ == "ResNet":
        expansion = getattr(model.layer1[0], "expansion", 1)
        return tuple(c // expansion for c in info[1:]) or None  # feature_info[0] is the stem
    return tuple(info) or None


TIMM_MODULES = {"resnet": "ResNet", "convnext": "ConvNeXt"}  # timm module -> the one model class it builds


def has_width_knob(prefix: str, name: str, model: nn.Module | None = None) -> bool:
    """Whether the hub model can be built at another width (by name; the built model, when given, decides)."""
    if prefix == "torchvision":
        return name in TORCHVISION_WIDTH_MULT
    if model is not None:
        return type(model).__name__ in TIMM_STAGE_WIDTHS
    import timm
    base = name.split(".", 1)[0]
    return any(base in timm.list_models(module=m) for m in TIMM_MODULES)




WIDTH_SUFFIX = {"timm": r"_\d{3}", "torchvision": r"\d_\d+"}  # mobilenetv3_small_050; mnasnet0_5, shufflenet_v2_x0_5


def _siblings(prefix: str, name: str, known: tuple[str, ...]) -> list[str]:
    """Models the library names by width (timm's mobilenetv3_small_050/_075/_100, torchvision's mnasnet0_5/1_0):
    the other widths of `name` in `known`."""
    suffix = WIDTH_SUFFIX[prefix]
    m = re.fullmatch(rf"(.+?)({suffix})", name.split(".", 1)[0])
    if not m:
        return []
    return [n for n in known if re.fullmatch(re.escape(m.group(1)) + suffix, n) and n != m.group(0)]


def width_problem(prefix: str, name: str, known: tuple[str, ...] = ()) -> str:
    """The sentence for a width asked of a hub model without a width knob (`known`: the library's model names),
    with what to do instead."""
    siblings = _siblings(prefix, name, known)
    if siblings:
        instead = (f"{prefix} names its other widths instead: set student.arch to one of "
                   f"{', '.join(f'{prefix}:{s}' for s in siblings[:4])}")
    elif prefix == "torchvision":
        instead = (f"pick a smaller model by name, or one of torchvision's models with a width knob "
                   f"({', '.join(TORCHVISION_WIDTH_MULT)})")
    else:
        instead = "pick a smaller model by name, or a timm ResNet or ConvNeXt, which take a width"
    return (f"Architecture '{prefix}:{name}' has no width knob in {prefix} (the library builds it at one width), "
            f"so width_mult and width cannot shrink it; {instead}, and set the width multiplier to 1.")


def depth_problem(arch: str, what: str) -> str:
    """The sentence for a depth asked of a hub model: none of them has a depth knob here."""
    return (f"Architecture '{arch}' has no depth knob here, so {what} cannot be applied; pick a shallower model "
            "by name (e.g. resnet18 instead of resnet50) and set the depth multiplier to 1 and depth to 0.")


def width_kwargs(prefix: str, name: str, model: nn.Module, mult: float, known: tuple[str, ...] = ()) -> dict:
    """Keyword arguments that build `name` at `mult` times its width; ConfigError when it has no width knob."""
    if not has_width_knob(prefix, name, model):
        raise ConfigError(width_problem(prefix, name, known))
    if prefix == "torchvision":
        return {"width_mult": mult}
    widths = _timm_stage_widths(model)
    if not widths:
        raise ConfigError(width_problem(prefix, name, known))
    return {TIMM_STAGE_WIDTHS[type(model).__name__]: tuple(max(1, round(w * mult)) for w in widths)}
