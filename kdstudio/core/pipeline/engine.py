"""The pipeline's one entry point, for a single run and a sweep alike.

`run(cfg, out_dir, on_event=..., control=..., resume=...)` is what the CLI and the GUI worker call: a config with
run.seeds or run.sweep (or a sweep folder to resume) runs as a sweep (`sweep.py`), anything else as one run
(`single.py`). Either way the engine announces its plan in RUN_STARTED, writes the run folder (config.toml,
metrics.jsonl, summary.json, log.txt, checkpoints/, exports/; a sweep adds sweep.toml, sweep.json, sweep.md and one
run folder per point and seed) and returns the summary (a sweep: its result).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .. import events as ev
from ..config import Config
from . import sweep
from .single import run_single


def run(cfg: Config | None, out_dir: str | Path, *, on_event: Callable[[ev.Event], None] | None = None,
        control: ev.RunControl | None = None, resume: bool = False) -> dict:
    """Run a config (one run, or a sweep when it asks for seeds or a grid), or resume a folder; returns the summary
    (a sweep: its result) as written to summary.json (sweep.json).

    Raises KDError for user mistakes found before the run starts. Once the run has started, failures are
    recorded (summary status "failed", a RUN_FAILED event) and re-raised; a stop request ends with status
    "stopped" and a checkpoint.
    """
    if (cfg is not None and sweep.is_sweep(cfg)) or (resume and sweep.is_sweep_dir(out_dir)):
        from ..errors import KDError
        from ..train.distributed import requested
        if requested():
            raise KDError("A sweep (run.seeds or run.sweep) cannot run distributed yet; run it in one process, or "
                          "run each point with --nproc.")
        return sweep.run_sweep(cfg, out_dir, on_event=on_event, control=control, resume=resume)
    return run_single(cfg, out_dir, on_event=on_event, control=control, resume=resume)
