"""A finished run folder as live objects, and what is done with one afterwards: evaluate again, export, gallery.

These are the plain-data entry points of `kdstudio eval` / `kdstudio export` and of the GUI's Evaluate and Export
pages: give a run folder, get dicts and lists back (no Qt, no printing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import config as config_mod
from ..errors import KDError
from ..store import summary as summary_mod
from ..store.files import RunDir, atomic_write_json, read_json

PARITY_SAMPLES = 1024  # test inputs used for the export parity check


@dataclass
class LoadedRun:
    """A run folder loaded for evaluation or export (models on the CPU, in eval mode)."""

    rd: RunDir
    cfg: object
    summary: summary_mod.Summary
    data: object
    models: dict[str, nn.Module] = field(default_factory=dict)
    records: list[dict] = field(default_factory=list)
    base_factory: Callable[[], nn.Module] | None = None
    notes: list[str] = field(default_factory=list)

    def plan(self, name: str) -> dict:
        """Channel plan of a model (empty unless it went through channel pruning)."""
        return next((r.get("plan") or {} for r in self.records if r["name"] == name), {})


def student_spec(cfg) -> tuple[str, int, int]:
    """(arch, width, depth) of the configured student (multipliers and arch = "teacher" resolved)."""
    from .. import models
    spec = getattr(models, "student_spec", None)
    if spec is not None:
        return spec(cfg)
    return cfg.student.arch, cfg.student.width, cfg.student.depth


def student_factory(cfg, num_classes: int, input_shape: tuple) -> Callable[[], nn.Module]:
    """A function building a fresh student of the configured architecture."""
    from .. import models
    arch, width, depth = student_spec(cfg)
    return lambda: models.build(arch, num_classes, tuple(input_shape), width, depth)


def student_arch_info(cfg, data, plan: dict | None = None) -> dict:
    """The config JSON written beside the exports."""
    from .export import arch_json
    arch, width, depth = student_spec(cfg)
    return arch_json(arch, width, depth, data.num_classes, data.input_shape, data.class_names, data.mean, data.std,
                     plan)


def _load_state(path: Path) -> dict | None:
    if not path.is_file():
        return None
    from ..train.checkpoints import read_checkpoint
    return read_checkpoint(path)


def _teacher(cfg, data, rd: RunDir, notes: list[str]) -> nn.Module | None:
    from .. import models
    state = _load_state(rd.checkpoint("teacher"))
    try:
        if cfg.teacher.source == "train":
            if not state:
                notes.append("no teacher checkpoint; teacher skipped")
                return None
            teacher = models.build(cfg.teacher.arch, data.num_classes, data.input_shape, cfg.teacher.width,
                                   cfg.teacher.depth)
        else:
            from ..models.teacher_io import load_teacher
            teacher = load_teacher(cfg, data, torch.device("cpu"))
        if state and "model" in state:
            teacher.load_state_dict(state["model"])
    except KDError as e:
        notes.append(f"teacher not loaded: {e}")
        return None
    return teacher.eval()


def load_run(run_dir: str | Path, *, variants: bool = True) -> LoadedRun:
    """Load config, data (same split), teacher, student, baseline and compressed variants of a run folder.
    KDError when the folder is not a run or holds no finished student."""
    from .compress import rebuild_variants
    from ..data import load_data
    rd = RunDir(run_dir)
    if not rd.config.is_file():
        raise KDError(f"'{rd.root}' is not a KD Studio run folder (it has no config.toml); give the folder that "
                      "`kdstudio run` wrote.")
    cfg = config_mod.load(rd.config)
    summary = summary_mod.read(rd.summary) or summary_mod.Summary()
    state = _load_state(rd.checkpoint("distill"))
    if not state or not state.get("complete"):
        raise KDError(f"The run in '{rd.root}' has no distilled student yet (checkpoints/distill.pt is missing or "
                      f"unfinished); finish it first with `kdstudio run --resume --out {rd.root}`.")
    data = load_data(cfg, cache_dir=rd.root / "cache")  # reuses the run's conversion of a compressed .npz
    run = LoadedRun(rd, cfg, summary, data)
    run.base_factory = student_factory(cfg, data.num_classes, data.input_shape)
    teacher = _teacher(cfg, data, rd, run.notes)
    if teacher is not None:
        run.models["teacher"] = teacher
    student = run.base_factory()
    student.load_state_dict(_chosen_weights(rd, "distill", cfg, state))
    run.models["student"] = student.eval()
    base = _load_state(rd.checkpoint("baseline"))
    if base and base.get("complete"):
        b = run.base_factory()
        b.load_state_dict(_chosen_weights(rd, "baseline", cfg, base))
        run.models["baseline"] = b.eval()
    if variants:
        run.records = list((summary.compress or {}).get("variants", []))
        built = rebuild_variants(run.records, run.models["student"], run.base_factory, rd.checkpoints,
                                 data.x_train, cfg.compress.calibration_samples)
        run.models.update({k: v for k, v in built.items() if k != "student"})
    return run


def _chosen_weights(rd: RunDir, stage: str, cfg, last: dict) -> dict:
    """The weights evaluate.model asks for: the stage's last, or its best on validation when it kept one."""
    if cfg.evaluate.model == "best":
        best = _load_state(rd.checkpoints / f"{stage}.best.pt")
        if best and "model" in best:
            return best["model"]
    return last["model"]


def evaluate_run(run_dir: str | Path, *, latency_repeats: int | None = None, on_model=None) -> dict:
    """Evaluate every model of a finished run on its test split again; writes evaluation.json and updates
    summary.json. Returns the evaluation (models -> full metrics, the comparison table)."""
    from . import gain
    from .evaluate import comparison_table, evaluate_all
    run = load_run(run_dir)
    d = run.data
    reps = run.cfg.evaluate.latency_repeats if latency_repeats is None else latency_repeats
    results = evaluate_all(run.models, d.x_test, d.y_test, d.class_names, latency_repeats=reps,
                           flops_from=flops_parents(run.records), on_model=on_model,
                           threads=run.cfg.evaluate.cpu_threads)
    summary = run.summary
    summary.teacher = summary.teacher or summary_mod.ModelEntry(arch=run.cfg.teacher.arch)
    summary.student = summary.student or summary_mod.ModelEntry(arch=student_spec(run.cfg)[0])
    if "teacher" not in results:
        summary.teacher = None
    summary.apply_evaluation(results, comparison_table(results), gain.from_metrics(results))
    detail = write_evaluation(run.rd, results, d.class_names, run.notes)
    summary_mod.write(run.rd.summary, summary)
    return detail


def flops_parents(records: list[dict]) -> dict[str, str]:
    """For each int8 variant, the float model whose FLOPs it reports (the counter cannot see int8 kernels)."""
    return {r["name"]: r.get("parent", "student") for r in records if r.get("quant")}


def write_evaluation(rd: RunDir, results: dict, class_names: list[str], notes: list[str] | None = None) -> dict:
    """Write evaluation.json (every metric, confusion matrices, misclassified indices) atomically; return it."""
    from .evaluate import comparison_table
    detail = {"class_names": list(class_names), "models": results, "table": comparison_table(results),
              "notes": list(notes or [])}
    try:
        atomic_write_json(rd.evaluation, detail)
    except OSError as e:
        raise KDError(f"Cannot write '{rd.evaluation}' ({e.strerror or e}); check free space and "
                      "permissions.") from None
    return detail


def load_evaluation(run_dir: str | Path) -> dict | None:
    """The last evaluation.json of a run (None when the run was never evaluated)."""
    return read_json(RunDir(run_dir).evaluation, None)


def gallery(run_dir: str | Path, model: str = "student", limit: int = 64) -> list[dict]:
    """Misclassified test examples of one model for an image gallery: index, true/pred class (number and name),
    confidence, and the input un-normalised to [0, 1] as a numpy array (H, W) or (H, W, C); [] for non-images."""
    from ..data import load_data
    ev = load_evaluation(run_dir)
    if not ev or model not in ev["models"]:
        raise KDError(f"No evaluation of '{model}' in '{run_dir}'; run `kdstudio eval {run_dir}` first.")
    cfg = config_mod.load(RunDir(run_dir).config)
    data = load_data(cfg, cache_dir=RunDir(run_dir).root / "cache")
    x = data.x_test
    if x.dim() != 4:
        return []
    mean = torch.tensor(data.mean or [0.0]).view(-1, 1, 1)
    std = torch.tensor(data.std or [1.0]).view(-1, 1, 1)
    names = ev["class_names"]
    out = []
    for item in ev["models"][model]["misclassified"][:limit]:
        img = (x[item["index"]] * std + mean)
        lo, hi = img.min(), img.max()
        img = ((img - lo) / (hi - lo if hi > lo else 1)).permute(1, 2, 0).squeeze(-1).numpy()
        out.append({**item, "true_name": names[item["true"]], "pred_name": names[item["pred"]], "image": img})
    return out


def prepare_export(model: nn.Module, base_factory, plan: dict, quantize: str, calib_x: torch.Tensor):
    """(live model, factory of the same structure, float model) for exporting `model` with `quantize` applied."""
    from .channel_prune import apply_plan
    from .compress import HALF_DTYPES, quantize_int8, to_half
    model = model.to("cpu").eval()
    structure = lambda: apply_plan(base_factory(), plan or {})  # noqa: E731
    if quantize in ("none", "", None):
        return model, structure, model
    if quantize == "int8":
        live, mode = quantize_int8(model, "auto", calib_x)
        return live, (lambda: quantize_int8(structure(), mode, calib_x)[0]), model
    return to_half(model, quantize, calib_x), (lambda: structure().to(HALF_DTYPES[quantize])), model


def pick_source(models: dict[str, nn.Module], records: list[dict], which: str = "auto") -> str:
    """Name of the model to export: `which`, or for "auto" the last float compression variant, else the student."""
    if which != "auto":
        if which not in models:
            raise KDError(f"export.model = \"{which}\" but this run has no '{which}' variant; use \"auto\" or "
                          f"one of {', '.join(n for n in models if n not in ('teacher', 'baseline'))}.")
        return which
    floats = [r["name"] for r in records if not r.get("quant") and not r.get("half") and r["name"] in models]
    return floats[-1] if floats else "student"


def export_run(run_dir: str | Path, formats: list[str], *, quantize: str = "none", out: str | Path | None = None,
               force: bool = False, model: str = "auto", latency_repeats: int = 20, threads: int | None = None) -> dict:
    """Export a finished run's student (or a variant) in each format, reloaded and checked; records the result
    in summary.json and refreshes the model card. Returns {"exports", "failed", "model", "out"}."""
    from .export import export_all
    from .modelcard import write_model_card
    run = load_run(run_dir)
    name = pick_source(run.models, run.records, model)
    d = run.data
    live, factory, float_model = prepare_export(run.models[name], run.base_factory, run.plan(name), quantize,
                                                d.x_train[:run.cfg.compress.calibration_samples])
    out_dir = Path(out) if out else run.rd.exports
    info = {**student_arch_info(run.cfg, d, run.plan(name)), "model": name}
    result = export_all(live, factory, info, formats, out_dir, d.x_test[:PARITY_SAMPLES], overwrite=force,
                        quantize=quantize, float_model=float_model, latency_repeats=latency_repeats,
                        threads=run.cfg.evaluate.cpu_threads if threads is None else threads)
    for e in result["exports"]:
        e["model"] = name
    run.summary.exports = summary_mod.merge_exports(run.summary.exports, result["exports"])
    # this export's outcome replaces earlier failures of the same format, weights and folder (a success clears)
    run.summary.export_failed = summary_mod.merge_export_failed(run.summary.export_failed or [], list(formats),
                                                                quantize, out_dir, result["failed"])
    notes = []
    try:
        summary_mod.write(run.rd.summary, run.summary)
    except KDError as e:  # a read-only run exported elsewhere: the files and their card are still written there
        if out_dir.resolve() == run.rd.exports.resolve():
            raise
        notes.append(f"The run's summary.json does not list this export: {e}")
    write_model_card(run.rd, run.summary.to_json(), run.cfg, out_dir=out_dir)
    return {**result, "model": name, "out": str(out_dir), "notes": notes}
