"""What evaluate and export cost, for the progress bar and the ETA (Qt-free).

Measured where possible: each run's metrics.jsonl ends with a line per stage after training (core/pipeline/single.py
TIMING_KEYS): evaluate's seconds for so many models, export's seconds per format. A new run of the same project
reads its latest earlier runs' lines (the tail of each file only). Without them, evaluate's cost is estimated from the
run's own training speed (`evaluate_from_speed`), and export's stays unknown until the project has exported once.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

RECENT = 5           # earlier runs read, newest first
TAIL_BYTES = 16384   # the end of a metrics.jsonl that holds its timing lines
# Evaluate measures each model's latency at batch 1 and 64 after 5 warm-up calls and about 30 timed ones (the
# defaults): 35 × 65 samples' worth of forward passes besides the test split itself.
LATENCY_SAMPLES = 35 * (1 + 64)
FORWARD_SPEEDUP = 3.0  # a forward pass alone is about a third of a training step's work (forward + backward)
# What a model's evaluation costs besides its forward passes (counting FLOPs, the latency timer's least measuring
# time, the metrics): measured once on the tiny digits run (0.50 s for 3 models, 0.03 s of it forward passes).
MODEL_OVERHEAD_S = 0.15


@dataclass
class PastCosts:
    """From a project's earlier runs: evaluate's seconds per model, export's seconds per format (medians)."""

    evaluate_per_model: float | None = None
    export_per_format: dict[str, float] = field(default_factory=dict)
    runs: int = 0  # how many earlier runs said something

    def evaluate(self, models: int) -> float | None:
        """Seconds to evaluate `models` models; None when no earlier run was timed."""
        return self.evaluate_per_model * models if self.evaluate_per_model is not None else None

    def export(self, formats: list[str]) -> float | None:
        """Seconds to export `formats`; None when one of them was never timed here."""
        if not formats or any(f not in self.export_per_format for f in formats):
            return None
        return sum(self.export_per_format[f] for f in formats)


def _timing_lines(metrics: Path) -> list[dict]:
    """The evaluate/export timing lines at the end of a metrics.jsonl (nothing when it has none or is unreadable)."""
    try:
        with open(metrics, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []
    out = []
    for line in tail[1:] if len(tail) > 1 else tail:  # the first line of a tail may be cut
        if '"stage_finished"' not in line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("kind") == "stage_finished":
            out.append(rec)
    return out


def past_costs(runs_dir: Path, exclude: Path | None = None) -> PastCosts:
    """What evaluate and export took in the latest runs of `runs_dir` (a project's runs/), `exclude` left out."""
    try:
        folders = sorted((d for d in Path(runs_dir).iterdir() if d.is_dir() and d != exclude),
                         key=lambda d: d.name, reverse=True)
    except OSError:
        return PastCosts()
    per_model: list[float] = []
    per_format: dict[str, list[float]] = {}
    runs = 0
    for folder in folders[:4 * RECENT]:  # a sweep or a failed run says nothing: look a little further, not at all
        if runs >= RECENT:
            break
        lines = _timing_lines(folder / "metrics.jsonl")
        runs += bool(lines)
        for rec in lines:
            seconds, models = rec.get("wall_s"), rec.get("models")
            if rec.get("stage") == "evaluate" and _positive(seconds) and _positive(models):
                per_model.append(seconds / models)
            formats = rec.get("format_seconds")
            if rec.get("stage") == "export" and isinstance(formats, dict):
                for name, s in formats.items():
                    if _positive(s) or s == 0:
                        per_format.setdefault(str(name), []).append(float(s))
    return PastCosts(statistics.median(per_model) if per_model else None,
                     {k: statistics.median(v) for k, v in per_format.items()}, runs)


def evaluate_from_speed(models: int, samples: int, train_samples_per_s: float) -> float | None:
    """Seconds to evaluate `models` models on `samples` test samples (plus their latency timing) at a forward
    speed estimated from the training speed; None while that speed is unknown."""
    if not train_samples_per_s or train_samples_per_s <= 0:
        return None
    return models * (MODEL_OVERHEAD_S + (samples + LATENCY_SAMPLES) / (FORWARD_SPEEDUP * train_samples_per_s))


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
