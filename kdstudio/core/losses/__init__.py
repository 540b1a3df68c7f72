"""Distillation methods: one small class per method, a registry, and `create(name, **params)`.

Public API (users' notebooks rely on it):
    from kdstudio.core import losses
    loss = losses.create("kd", temperature=4.0, alpha=0.9)
    terms = loss(student_logits, teacher_logits, targets)   # dict of named tensors, key "total" included
    losses.available()                                       # {name: {"params": {...}, "doc": "...", "kind": ...}}
    fit = losses.create("fitnet", weight=1.0)
    terms = fit(student_feature, teacher_feature)            # feature methods: matched features (or lists)

The engine uses `build_objective(cfg.distill, teacher=..., student=..., example_input=...)`, which combines
the configured logit method with an optional feature method and registers the feature hooks.
"""

from __future__ import annotations

import difflib
import inspect

from torch import nn

from .. import config as _config
from ..errors import ConfigError
from .ensemble import MultiTeacher, ensemble
from .feature import AT, PKT, RKD, SP, FitNet
from .kd import KD
from .logit import DIST, DKD, LogitMSE, SoftMSE
from .objective import Objective

REGISTRY: dict[str, type[nn.Module]] = {
    "kd": KD,
    "soft_mse": SoftMSE,
    "logit_mse": LogitMSE,
    "dkd": DKD,
    "dist": DIST,
    "fitnet": FitNet,
    "at": AT,
    "rkd": RKD,
    "sp": SP,
    "pkt": PKT,
}

__all__ = ["REGISTRY", "available", "create", "from_config", "build_objective", "config_problems",
           "MultiTeacher", "ensemble", "Objective", "logit_methods", "feature_methods"]


def available() -> dict[str, dict]:
    """Every method with its parameters (and defaults), the first line of its documentation and its kind."""
    out = {}
    for name, cls in REGISTRY.items():
        sig = inspect.signature(cls.__init__)
        params = {p.name: p.default for p in list(sig.parameters.values())[1:]
                  if p.default is not inspect.Parameter.empty}
        out[name] = {"params": params, "doc": (cls.__doc__ or "").strip().splitlines()[0],
                     "kind": getattr(cls, "kind", "logit")}
    return out


def logit_methods() -> list[str]:
    """Names of the methods that work on logits."""
    return [n for n, c in REGISTRY.items() if getattr(c, "kind", "logit") == "logit"]


def feature_methods() -> list[str]:
    """Names of the methods that work on intermediate features."""
    return [n for n, c in REGISTRY.items() if getattr(c, "kind", "logit") == "feature"]


def _unknown_method(name: str, key: str, names: list[str]) -> ConfigError:
    near = difflib.get_close_matches(str(name), names, n=1, cutoff=0.4)
    hint = f" Did you mean '{near[0]}'?" if near else f" Available: {', '.join(names)}."
    return ConfigError(f"Unknown distillation method '{name}'.{hint}", key=key)


def create(name: str, **params) -> nn.Module:
    """Instantiate method `name` with its parameters; unknown names and parameters raise ConfigError."""
    if name not in REGISTRY:
        raise _unknown_method(name, "distill.method", list(REGISTRY))
    known = available()[name]["params"]
    for p in params:
        if p not in known:
            near = difflib.get_close_matches(p, list(known), n=1, cutoff=0.5)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise ConfigError(f"Method '{name}' has no parameter '{p}'{hint}; its parameters are "
                              f"{', '.join(known) or 'none'}.", key="distill.params")
    try:
        module = REGISTRY[name](**params)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"Method '{name}' got a parameter of the wrong type ({e}); use numbers.",
                          key="distill.params") from None
    module.registry_name = name
    return module


def from_config(distill) -> nn.Module:
    """The method a [distill] section asks for, with temperature/alpha and its `params` table."""
    known = available().get(distill.method, {}).get("params", {})
    params = {k: getattr(distill, k) for k in ("temperature", "alpha") if k in known}
    params.update(distill.params)
    return create(distill.method, **params)


def _feature_spec(distill) -> tuple[str, dict]:
    """(feature method name or "", its params) from a [distill] section."""
    if REGISTRY.get(distill.method) is not None and REGISTRY[distill.method].kind == "feature":
        return distill.method, dict(distill.params)
    return getattr(distill, "feature_method", "") or "", dict(getattr(distill, "feature_params", {}) or {})


def build_objective(distill, *, teacher: nn.Module, student: nn.Module, example_input) -> Objective:
    """The run's objective: logit method (or CE) + optional feature method with hooks and adapters.

    Raises ConfigError before training for unknown layers (listing close names), unmatched layer pairs
    (naming both layers and shapes), `at` on non-4-D features and teachers without accessible layers.
    `example_input` is one batch on the models' device; only its first two samples are run, in eval mode.
    """
    feat_name, feat_params = _feature_spec(distill)
    logit = None if feat_name == distill.method else from_config(distill)
    if not feat_name:
        return Objective(logit)
    from . import matching
    feature = create(feat_name, **feat_params)
    matcher = matching.build_matcher(student, teacher, list(getattr(distill, "student_layers", []) or []),
                                     list(getattr(distill, "teacher_layers", []) or []), feature, example_input)
    return Objective(logit, feature, matcher)


def config_problems(cfg) -> list[tuple[str, str]]:
    """Method problems in a config as (dotted key, one sentence); registered in config.EXTERNAL_CHECKS."""
    d, out = cfg.distill, []
    if d.method not in REGISTRY:
        return [("distill.method", str(_unknown_method(d.method, "distill.method", list(REGISTRY))))]
    fm = getattr(d, "feature_method", "") or ""
    specs = [("distill.params", d.method, d.params)]
    if fm:
        if fm not in REGISTRY:
            e = _unknown_method(fm, "distill.feature_method", feature_methods())
            return [("distill.feature_method", str(e).replace("distillation method", "feature method"))]
        if REGISTRY[fm].kind != "feature":
            return [("distill.feature_method", f"distill.feature_method = '{fm}' is a logit method; set it as "
                     f"distill.method, and use one of {', '.join(feature_methods())} here.")]
        if REGISTRY[d.method].kind == "feature":
            return [("distill.feature_method", f"distill.method '{d.method}' is already a feature method; "
                     f"combine a feature method with a logit method ({', '.join(logit_methods())}).")]
        specs.append(("distill.feature_params", fm, getattr(d, "feature_params", {})))
    for key, name, params in specs:
        if not isinstance(params, dict):
            out.append((key, f"'{key}' must be a table like {{ weight = 1.0 }}."))
            continue
        try:
            create(name, **params)
        except ConfigError as e:
            out.append((key, str(e)))
        min_batch = getattr(REGISTRY[name], "min_batch", 1)
        if min_batch > 1 and cfg.data.batch_size < min_batch:
            out.append(("data.batch_size", f"Method '{name}' compares samples within a batch, so data.batch_size "
                        f"must be at least {min_batch}, not {cfg.data.batch_size}."))
    s_layers, t_layers = getattr(d, "student_layers", []) or [], getattr(d, "teacher_layers", []) or []
    uses_features = REGISTRY[d.method].kind == "feature" or bool(fm)
    if len(s_layers) != len(t_layers):
        out.append(("distill.teacher_layers", f"distill.student_layers has {len(s_layers)} names and "
                    f"distill.teacher_layers {len(t_layers)}; give one teacher layer per student layer."))
    elif s_layers and not uses_features:
        out.append(("distill.student_layers", f"Layers are named but method '{d.method}' uses no features; set "
                    "distill.feature_method (e.g. \"fitnet\") or clear the layer lists."))
    return out


if config_problems not in _config.EXTERNAL_CHECKS:
    _config.EXTERNAL_CHECKS.append(config_problems)
