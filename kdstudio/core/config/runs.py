"""Checks of the [run] section: the seeds and the sweep grid (torch-free; `config.problems` calls them)."""

from __future__ import annotations

import math

from ..errors import ConfigError


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def problems(cfg, *, field_info, config_problems) -> list[tuple[str, str]]:
    """Problems of [run] seeds / sweep, as (key, sentence); each swept value is checked as its own setting by
    `config_problems` (config.problems, passed in: this module sits below config/__init__ and never imports it)."""
    out = []
    seeds = cfg.run.seeds
    if any(not isinstance(s, int) or isinstance(s, bool) for s in seeds):
        out.append(("run.seeds", f"run.seeds must be whole numbers like [0, 1, 2], not {seeds!r}."))
    elif len(set(seeds)) != len(seeds):
        out.append(("run.seeds", f"run.seeds lists a seed twice ({seeds!r}); each seed once."))
    for key, values in cfg.run.sweep.items():
        if key == "seed" or key.startswith("run."):
            out.append(("run.sweep", f"run.sweep cannot vary '{key}'; use run.seeds for seeds."))
            continue
        try:
            f = field_info(key)
        except ConfigError as e:
            out.append(("run.sweep", f"run.sweep: {e}"))
            continue
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        if kind not in ("int", "float"):
            out.append(("run.sweep", f"run.sweep: '{key}' is not a numeric setting ({kind}); a sweep varies "
                                     "numbers such as distill.temperature or distill.alpha."))
            continue
        if not isinstance(values, list) or not values or not all(_number(v) for v in values):
            out.append(("run.sweep", f"run.sweep: '{key}' needs a non-empty list of numbers, like [2, 4], "
                                     f"not {values!r}."))
            continue
        for v in values:
            trial = cfg.copy()
            trial.run.seeds, trial.run.sweep = [], {}
            try:
                trial.set(key, v)
            except ConfigError as e:
                out.append(("run.sweep", f"run.sweep: {e}"))
                break
            msg = next((m for k, m in config_problems(trial) if k == key), None)
            if msg:
                out.append(("run.sweep", f"run.sweep: {msg}"))
                break
    return out
