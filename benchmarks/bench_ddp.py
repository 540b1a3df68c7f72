"""Distributed training speed: distill samples/s on 1 and N processes (torchrun + DDP), and the scaling efficiency.

Run:  python benchmarks/bench_ddp.py [--nproc 2] [--epochs 4] [--batch 128] [--device cpu]

Runs the digits demo (teacher trained briefly, baseline and export off) through `kdstudio run --nproc P` for P = 1
and P = --nproc, with the same GLOBAL batch (data.batch_size = batch / P per process), and prints each run's distill
samples/s (summary.json), its test accuracy and the efficiency samples/s(P) / (P × samples/s(1)). On a CPU, gloo
and P processes share the machine's cores: on a 2-core machine the figure says little (each process gets one core
and the all-reduce of every step competes with training); it means something on a machine with a core or a GPU per
process and a student large enough that its step outweighs the gradient exchange.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdstudio.core import config  # noqa: E402
from kdstudio.core.config.templates import demo_config  # noqa: E402


def one(cfg_path: Path, out: Path, nproc: int, batch: int) -> dict:
    """Run the config on `nproc` processes with a global batch of `batch`; returns its summary."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "kdstudio", "run", str(cfg_path), "--out", str(out), "--nproc", str(nproc),
           "--set", f"data.batch_size={batch // nproc}"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--epochs", type=int, default=4, help="distill epochs")
    p.add_argument("--batch", type=int, default=128, help="global batch (split over the processes)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    cfg = demo_config()
    cfg.device = args.device
    cfg.teacher.epochs, cfg.distill.epochs = 2, args.epochs
    cfg.baseline.enabled, cfg.export.formats, cfg.evaluate.latency_repeats = False, [], 0
    cfg.teacher.skip_sanity_check = True
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        cfg_path = Path(tmp) / "bench.toml"
        config.save(cfg, cfg_path)
        rows = []
        for n in (1, args.nproc):
            s = one(cfg_path, Path(tmp) / f"p{n}", n, args.batch)
            rows.append((n, s["distill"]["samples_per_s"], s["student"]["accuracy"], s["device"]))
    base = rows[0][1]
    print(f"cores {os.cpu_count()}, global batch {args.batch}, distill {args.epochs} epochs on digits")
    print(f"{'processes':>9}  {'batch/process':>13}  {'samples/s':>10}  {'efficiency':>10}  {'test acc':>8}  device")
    for n, sps, acc, device in rows:
        print(f"{n:>9}  {args.batch // n:>13}  {sps:>10,.0f}  {sps / (n * base):>10.0%}  {acc:>8.2%}  {device}")


if __name__ == "__main__":
    main()
