"""Which weights should a run evaluate and export: the last epoch's, or the best epoch on validation?

Runs the digits demo once per seed (export off) and scores, from the same run folder, the distilled student and the
baseline with their last weights (checkpoints/<stage>.pt) and with their best-on-validation weights
(checkpoints/<stage>.best.pt), on the test split. Prints per-seed accuracies, the means, and the KD gain under each
rule. The choice of `evaluate.model`'s default (README, "Training extras") comes from this table.

    OMP_NUM_THREADS=1 python benchmarks/experiment_best_vs_last.py [--seeds 0 1 2 3 4 5 6 7] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from kdstudio.core.config.templates import demo_config
from kdstudio.core.data import load_data
from kdstudio.core.outputs.artifacts import student_factory
from kdstudio.core.outputs.evaluate import accuracy
from kdstudio.core.pipeline import engine
from kdstudio.core.store.files import RunDir


def score(rd: RunDir, cfg, data, stage: str, which: str) -> float:
    """Test accuracy of a stage's student with its last or best weights."""
    path = rd.checkpoint(stage) if which == "last" else rd.checkpoints / f"{stage}.best.pt"
    model = student_factory(cfg, data.num_classes, data.input_shape)()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
    return accuracy(model.eval(), data.x_test, data.y_test)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    ap.add_argument("--out", default=None, help="folder for the runs (default: a temporary folder)")
    args = ap.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="kd-best-vs-last-"))
    rows = []
    for seed in args.seeds:
        cfg = demo_config()
        cfg.seed = seed
        cfg.export.formats = []
        cfg.evaluate.latency_repeats = 0
        rd = RunDir(root / f"seed-{seed}")
        engine.run(cfg, rd.root)
        data = load_data(cfg)
        row = {w: {s: score(rd, cfg, data, s, w) for s in ("distill", "baseline")} for w in ("last", "best")}
        rows.append(row)
        print(f"seed {seed}: last  student {row['last']['distill']:.2%} baseline {row['last']['baseline']:.2%}   "
              f"best  student {row['best']['distill']:.2%} baseline {row['best']['baseline']:.2%}", flush=True)
    for which in ("last", "best"):
        s = [r[which]["distill"] * 100 for r in rows]
        b = [r[which]["baseline"] * 100 for r in rows]
        g = [x - y for x, y in zip(s, b)]
        sd = statistics.stdev if len(rows) > 1 else (lambda v: 0.0)
        print(f"{which:>4}: student {statistics.fmean(s):.2f} ± {sd(s):.2f}  baseline {statistics.fmean(b):.2f} ± "
              f"{sd(b):.2f}  KD gain {statistics.fmean(g):+.2f} ± {sd(g):.2f} points "
              f"(KD ahead on {sum(x > 0 for x in g)} of {len(g)} seeds)")
    print(f"runs in {root}")


if __name__ == "__main__":
    main()
