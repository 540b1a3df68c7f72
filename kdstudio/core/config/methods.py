"""The distillation methods by name, without torch: kind, parameters with defaults, first doc line, min_batch.

The classes in `kdstudio.core.losses` are the implementation; this catalogue is what `config.problems` reads, so
a config is checked before torch has loaded (the window validates while torch is still importing). A new method
is its class in losses/ and one `_method(...)` line here; tests/test_registries.py asserts that the catalogue
and the classes agree (names, kinds, parameters and defaults, first doc line, min_batch, refused values).
"""

from __future__ import annotations

import math

from ..errors import ConfigError
from ..registry import Registry, nearest, unknown_message

METHODS = Registry("distillation method", key="distill.method")


# ---- parameter checks (the loss classes call these same functions) ----------------------------------------

def check_temperature(value) -> float:
    """The temperature as a float; ConfigError unless it is a finite number above 0."""
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ConfigError(f"The temperature must be above 0, not {value}; try 4.", key="distill.temperature")
    return v


def check_unit(name: str, value, key: str = "distill.params") -> float:
    """A weight that must lie in [0, 1]."""
    v = float(value)
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise ConfigError(f"'{name}' must be between 0 and 1, not {value}.", key=key)
    return v


def check_nonneg(name: str, value, key: str = "distill.params") -> float:
    """A weight that must be a finite number ≥ 0."""
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ConfigError(f"'{name}' must be a number of at least 0, not {value}.", key=key)
    return v


# How each parameter's value is checked; "number" is any value float() accepts (what the class does with it).
TEMPERATURE, UNIT, NONNEG, NUMBER = "temperature", "unit", "nonneg", "number"
_CHECKS = {
    TEMPERATURE: lambda name, v: check_temperature(v),
    UNIT: check_unit,
    NONNEG: check_nonneg,
    NUMBER: lambda name, v: float(v),
}


_BOUNDS = {TEMPERATURE: "above 0", UNIT: "between 0 and 1", NONNEG: "at least 0", NUMBER: "a number"}


def _method(name: str, target: str, kind: str, doc: str, *, min_batch: int = 1, **params: tuple) -> None:
    """Register a method: `target` is "module:Class" under kdstudio.core.losses; params are name=(default, check)."""
    METHODS.register_lazy(name, f"kdstudio.core.losses.{target}", kind=kind, doc=doc, min_batch=min_batch,
                          params={p: d for p, (d, _) in params.items()},
                          checks={p: c for p, (_, c) in params.items()})


_method("kd", "kd:KD", "logit",
        "Hinton KD: alpha·T²·KL(softmax(t/T) ‖ softmax(s/T)) (batch mean) + (1 − alpha)·CE(s, y).",
        temperature=(4.0, TEMPERATURE), alpha=(0.9, UNIT))
_method("soft_mse", "logit:SoftMSE", "logit",
        "Soft MSE: alpha·mean_i Σ_j (softmax(t_i/T)_j − softmax(s_i/T)_j)² + (1 − alpha)·CE(s, y).",
        temperature=(1.0, TEMPERATURE), alpha=(0.9, UNIT))
_method("logit_mse", "logit:LogitMSE", "logit",
        "Logit regression: alpha·mean over all entries of (s − t)² + (1 − alpha)·CE(s, y).",
        alpha=(0.9, UNIT))
_method("dkd", "logit:DKD", "logit",
        "Decoupled KD: CE(s, y) + min(epoch/warmup_epochs, 1)·(alpha·TCKD + beta·NCKD), both KLs at T, ×T² "
        "(epoch from 1).",
        temperature=(4.0, TEMPERATURE), alpha=(1.0, NONNEG), beta=(8.0, NONNEG), warmup_epochs=(20, NONNEG))
_method("dist", "logit:DIST", "logit",
        "DIST: CE(s, y) + beta·T²·(1 − ρ_inter) + gamma·T²·(1 − ρ_intra) on softmax(·/T).",
        min_batch=2, temperature=(4.0, TEMPERATURE), beta=(1.0, NONNEG), gamma=(1.0, NONNEG))
_method("fitnet", "feature:FitNet", "feature",
        "FitNets hint: weight·mean((adapter(f_s) − f_t)²), the adapter a 1×1 conv or linear layer when sizes "
        "differ.",
        weight=(1.0, NONNEG))
_method("at", "feature:AT", "feature",
        "Attention transfer: weight·mean((Q_s − Q_t)²) with Q = normalize(mean_c |f|^p) per sample.",
        weight=(1000.0, NONNEG), p=(2.0, NONNEG))
_method("rkd", "feature:RKD", "feature",
        "Relational KD: distance_weight·smoothL1(ψ_D(s), ψ_D(t)) + angle_weight·smoothL1(ψ_A(s), ψ_A(t)).",
        min_batch=2, distance_weight=(25.0, NONNEG), angle_weight=(50.0, NONNEG))
_method("sp", "feature:SP", "feature",
        "Similarity-preserving KD: weight·‖norm_rows(F_s F_sᵀ) − norm_rows(F_t F_tᵀ)‖²_F / B².",
        weight=(3000.0, NONNEG))
_method("pkt", "feature:PKT", "feature",
        "Probabilistic knowledge transfer: weight·mean_ij P_t,ij·log((P_t,ij + ε)/(P_s,ij + ε)).",
        weight=(30000.0, NONNEG), eps=(1e-7, NUMBER))


# [distill] fields that a method may take as its own parameter: a config that does not set one gets the method's
# default (dkd's alpha is 1.0, soft_mse's temperature 1.0), not the schema's, which is kd's.
SHARED = ("temperature", "alpha")

# What distill.alpha weighs, per method that takes it (the form and the schema help say it).
ALPHA_MEANING = {
    "kd": "weight of the distillation term; 1 − alpha weights cross-entropy",
    "soft_mse": "weight of the soft-MSE term; 1 − alpha weights cross-entropy",
    "logit_mse": "weight of the logit-MSE term; 1 − alpha weights cross-entropy",
    "dkd": "weight of TCKD, the target-vs-rest KL (beta weights NCKD); cross-entropy keeps weight 1, so alpha may "
           "exceed 1",
}


def shared_default(method: str, name: str):
    """The default `method` gives the [distill] field `name` (temperature, alpha); None when it takes none."""
    if method not in METHODS:
        return None
    return METHODS.meta(method)["params"].get(name)


def alpha_help(method: str) -> str:
    """What distill.alpha means for `method`, with its default; or that the method does not use it."""
    default = shared_default(method, "alpha")
    if default is None:
        return f"not used by {method}" if method in METHODS else ""
    meaning = ALPHA_MEANING.get(method, "weight of the method's distillation term")
    return f"{method}: {meaning} (its default {default:g})"


def logit_methods() -> list[str]:
    """Names of the methods that work on logits."""
    return METHODS.names(kind="logit")


def feature_methods() -> list[str]:
    """Names of the methods that work on intermediate features."""
    return METHODS.names(kind="feature")


def param_problem(method: str, params: dict, *, values: bool = True) -> str | None:
    """The first parameter `method` lacks (or, with `values`, would refuse) as one sentence; None when all fit."""
    meta = METHODS.meta(method)
    known = meta["params"]
    for p, v in params.items():
        if p not in known:
            near = nearest(p, known)
            hint = f" (did you mean '{near}'?)" if near else ""
            return f"Method '{method}' has no parameter '{p}'{hint}; its parameters are {', '.join(known) or 'none'}."
        if not values:
            continue
        try:
            _CHECKS[meta["checks"][p]](p, v)
        except ConfigError as e:
            return str(e)
        except (TypeError, ValueError) as e:
            return f"Method '{method}' got a parameter of the wrong type ({e}); use numbers."
    return None


def problems(cfg) -> list[tuple[str, str]]:
    """Method problems in a config as (dotted key, one sentence): names, kinds, parameters, batch size, layers."""
    d, out = cfg.distill, []
    if d.method not in METHODS:
        return [("distill.method", str(METHODS.unknown(d.method)))]
    kind = METHODS.meta(d.method)["kind"]
    meta = METHODS.meta(d.method)
    for name in SHARED:  # distill.alpha/temperature checked as the method checks them (dkd's alpha may pass 1)
        if name in meta["params"]:
            check, value = meta["checks"][name], getattr(d, name)
            try:
                _CHECKS[check](f"distill.{name}", value)
            except ConfigError:
                side = "too large" if check == UNIT and value > 1 else "too small"
                out.append((f"distill.{name}", f"'distill.{name}' = {value:g} is {side} for method '{d.method}'; "
                            f"it must be {_BOUNDS[check]}."))
            except (TypeError, ValueError):
                out.append((f"distill.{name}", f"'distill.{name}' must be a number, not {value!r}."))
    fm = getattr(d, "feature_method", "") or ""
    specs = [("distill.params", d.method, d.params)]
    if fm:
        if fm not in METHODS:
            return [("distill.feature_method", unknown_message("feature method", fm, feature_methods()))]
        if METHODS.meta(fm)["kind"] != "feature":
            return [("distill.feature_method", f"distill.feature_method = '{fm}' is a logit method; set it as "
                     f"distill.method, and use one of {', '.join(feature_methods())} here.")]
        if kind == "feature":
            return [("distill.feature_method", f"distill.method '{d.method}' is already a feature method; "
                     f"combine a feature method with a logit method ({', '.join(logit_methods())}).")]
        specs.append(("distill.feature_params", fm, getattr(d, "feature_params", {})))
    for key, name, params in specs:
        if not isinstance(params, dict):
            out.append((key, f"'{key}' must be a table like {{ weight = 1.0 }}."))
            continue
        msg = param_problem(name, params)
        if msg:
            out.append((key, msg))
        min_batch = METHODS.meta(name)["min_batch"]
        if min_batch > 1 and cfg.data.batch_size < min_batch:
            out.append(("data.batch_size", f"Method '{name}' compares samples within a batch, so data.batch_size "
                        f"must be at least {min_batch}, not {cfg.data.batch_size}."))
    s_layers, t_layers = getattr(d, "student_layers", []) or [], getattr(d, "teacher_layers", []) or []
    if len(s_layers) != len(t_layers):
        out.append(("distill.teacher_layers", f"distill.student_layers has {len(s_layers)} names and "
                    f"distill.teacher_layers {len(t_layers)}; give one teacher layer per student layer."))
    elif s_layers and kind != "feature" and not fm:
        out.append(("distill.student_layers", f"Layers are named but method '{d.method}' uses no features; set "
                    "distill.feature_method (e.g. \"fitnet\") or clear the layer lists."))
    return out
