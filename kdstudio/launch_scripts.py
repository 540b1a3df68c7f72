"""Launch scripts a run designed in the window can be submitted with as it is: `run.sh` (torchrun on this machine's
GPUs) and `run.sbatch` (SLURM: `srun torchrun` on every node, the rendezvous from SLURM's environment). Both run
exactly `kdstudio run CONFIG --out RUNS/NAME`, the code path of core/train/distributed.py. Qt- and torch-free.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from .core.errors import KDError

RDZV_PORT = 29500


def _check(nproc: int, nodes: int) -> None:
    if nproc < 1:
        raise KDError(f"--nproc {nproc}: give the processes per machine, one per GPU (1 or more).")
    if nodes < 1:
        raise KDError(f"--nodes {nodes}: give the number of machines (1 or more).")


def run_sh(config: Path, out: str, nproc: int) -> str:
    """The one-machine script: torchrun with `nproc` processes (one per GPU), extra arguments passed on."""
    _check(nproc, 1)
    return f"""#!/usr/bin/env bash
# KD Studio: {config.name} on {nproc} process(es) of this machine, one per GPU (torchrun, PyTorch's launcher).
# Extra arguments go to `kdstudio run`, e.g.:  ./run.sh --resume
set -euo pipefail
cd "$(dirname "$0")"
exec torchrun --standalone --nproc-per-node {nproc} -m kdstudio run {shlex.quote(config.name)} --out {shlex.quote(out)} "$@"
"""


def sbatch(config: Path, out: str, nodes: int, gpus_per_node: int, *, hours: int = 4) -> str:
    """The SLURM script: one task per node, each starting torchrun with `gpus_per_node` processes; the c10d
    rendezvous on the job's first node, keyed by the job id."""
    _check(gpus_per_node, nodes)
    job = re.sub(r"[^A-Za-z0-9_.-]+", "-", config.stem)[:40] or "run"
    return f"""#!/bin/bash
# KD Studio: {config.name} on {nodes} node(s) × {gpus_per_node} GPU(s). Submit with:  sbatch run.sbatch
#SBATCH --job-name=kdstudio-{job}
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={gpus_per_node}
#SBATCH --time={hours:02d}:00:00
set -euo pipefail
cd "$SLURM_SUBMIT_DIR"
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes "$SLURM_NNODES" --nproc-per-node {gpus_per_node} \\
    --rdzv-id "$SLURM_JOB_ID" --rdzv-backend c10d --rdzv-endpoint "$head_node:{RDZV_PORT}" \\
    -m kdstudio run {shlex.quote(config.name)} --out {shlex.quote(out)}
"""


def write(config: str | Path, *, nproc: int, nodes: int = 1, out: str = "") -> list[Path]:
    """Write run.sh and run.sbatch next to `config` (atomically; run.sh executable); returns their paths."""
    from .core.store.files import atomic_write_text
    config = Path(config).expanduser()
    if not config.is_file():
        raise KDError(f"Config '{config}' does not exist; give the project's project.toml or a run config.")
    out = out or f"runs/{config.stem}-ddp"
    paths = [config.parent / "run.sh", config.parent / "run.sbatch"]
    atomic_write_text(paths[0], run_sh(config, out, nproc))
    atomic_write_text(paths[1], sbatch(config, out, nodes, nproc))
    paths[0].chmod(0o755)
    return paths
