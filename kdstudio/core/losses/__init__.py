"""Distillation methods: one small class per method, a registry, and `create(name, **params)`.

Public API (users' notebooks rely on it):
    from kdstudio.core import losses
    loss = losses.create("kd", temperature=4.0, alpha=0.9)
    terms = loss(student_logits, teacher_logits, targets)   # dict of named tensors, key "total" included
    losses.available()                                       # {name: {"params": {...}, "doc": "..."}}
"""

from __future__ import annotations

import difflib
import inspect

from torch import nn

from ..errors import ConfigError
from .kd import KD

REGISTRY: dict[str, type[nn.Module]] = {
    "kd": KD,
}


def available() -> dict[str, dict]:
    """Every method with its parameters (and defaults) and the first line of its documentation."""
    out = {}
    for name, cls in REGISTRY.items():
        sig = inspect.signature(cls.__init__)
        params = {p.name: p.default for p in list(sig.parameters.values())[1:]
                  if p.default is not inspect.Parameter.empty}
        out[name] = {"params": params, "doc": (cls.__doc__ or "").strip().splitlines()[0]}
    return out


def create(name: str, **params) -> nn.Module:
    """Instantiate method `name` with its parameters; unknown names and parameters raise ConfigError."""
    if name not in REGISTRY:
        near = difflib.get_close_matches(name, list(REGISTRY), n=1, cutoff=0.4)
        hint = f" Did you mean '{near[0]}'?" if near else f" Available: {', '.join(REGISTRY)}."
        raise ConfigError(f"Unknown distillation method '{name}'.{hint}", key="distill.method")
    known = available()[name]["params"]
    for p in params:
        if p not in known:
            raise ConfigError(f"Method '{name}' has no parameter '{p}'; its parameters are "
                              f"{', '.join(known) or 'none'}.", key="distill.params")
    return REGISTRY[name](**params)


def from_config(distill) -> nn.Module:
    """The method a [distill] section asks for, with temperature/alpha and its `params` table."""
    known = available().get(distill.method, {}).get("params", {})
    params = {k: getattr(distill, k) for k in ("temperature", "alpha") if k in known}
    params.update(distill.params)
    return create(distill.method, **params)
