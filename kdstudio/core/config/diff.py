"""What differs between configs: the dotted keys whose values differ across runs (the runs table's columns, like
TensorBoard's hparams view) and the two-sided diff of two runs (the Compare dialog). Torch-free.

Configs are compared as resolved values (`Config.to_dict()`), so a key an older run's file leaves out counts with
its default. A table-valued key (`run.sweep`, `distill.params`) is one value, as the forms edit it.
"""

from __future__ import annotations

from typing import Any

MISSING = object()  # a key one config does not have (a config that could not be read has none)


def flatten(tree: dict) -> dict[str, Any]:
    """{"distill.temperature": 4.0, "seed": 0, ...} from `Config.to_dict()`: each section's keys, values whole."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def differing_keys(configs: list[dict]) -> list[str]:
    """The dotted keys whose values are not the same in every one of these flattened configs (at least two), in
    the order the first config that has each key lists them."""
    configs = [c for c in configs if c is not None]
    if len(configs) < 2:
        return []
    order = list(dict.fromkeys(k for c in configs for k in c))
    return [k for k in order if any(_differ(configs[0].get(k, MISSING), c.get(k, MISSING)) for c in configs[1:])]


def diff(a: dict, b: dict) -> list[tuple[str, Any, Any]]:
    """(key, value in a, value in b) for every key whose values differ (MISSING where one has no such key)."""
    return [(k, a.get(k, MISSING), b.get(k, MISSING)) for k in differing_keys([a, b])]


def _differ(x, y) -> bool:
    if isinstance(x, bool) or isinstance(y, bool):
        return type(x) is not type(y) or x != y
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return float(x) != float(y)  # 4 and 4.0 are the same temperature
    return x != y


def show(value) -> str:
    """A value as the TOML editor writes it: "kd", 4.0, true, ["onnx"], { beta = 8.0 }; "–" for MISSING."""
    if value is MISSING:
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {show(v)}" for k, v in value.items()) + " }" if value else "{}"
    return str(value)
