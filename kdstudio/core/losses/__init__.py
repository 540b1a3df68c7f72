"""Distillation methods: one small class per method, and `create(name, **params)`.

The methods are registered by name in `kdstudio.core.config.methods.METHODS` (torch-free, so a config is checked
before torch loads); a new method is its class here and one line there.

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

from collections.abc import Iterator, Mapping

from torch import nn

from ..config.methods import METHODS, feature_methods, logit_methods, param_problem
from ..errors import ConfigError
from .ensemble import MultiTeacher, ensemble
from .objective import Objective


class _Classes(Mapping):
    """Method name -> class, read live from the catalogue (dict-style: `.get(name)` is None for unknown names)."""

    def __getitem__(self, name: str) -> type[nn.Module]:
        if name not in METHODS:
            raise KeyError(name)
        return METHODS.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(METHODS)

    def __len__(self) -> int:
        return len(METHODS)


# The methods are registered in config/methods.py (torch-free, so validation needs no torch); this is their classes.
REGISTRY: Mapping[str, type[nn.Module]] = _Classes()

__all__ = ["METHODS", "REGISTRY", "available", "create", "from_config", "build_objective", "MultiTeacher",
           "ensemble", "Objective", "logit_methods", "feature_methods"]


def available() -> dict[str, dict]:
    """Every method with its parameters (and defaults), the first line of its documentation and its kind."""
    return {name: {"params": dict(m["params"]), "doc": m["doc"], "kind": m["kind"]}
            for name, m in ((n, METHODS.meta(n)) for n in METHODS)}


def create(name: str, **params) -> nn.Module:
    """Instantiate method `name` with its parameters; unknown names and parameters raise ConfigError."""
    cls = METHODS.get(name)
    msg = param_problem(name, params, values=False)  # the class checks the values itself, with their own keys
    if msg:
        raise ConfigError(msg, key="distill.params")
    try:
        module = cls(**params)
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
    if distill.method in METHODS and METHODS.meta(distill.method)["kind"] == "feature":
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
