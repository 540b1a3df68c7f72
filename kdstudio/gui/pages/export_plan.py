"""What an export from the Export page touches, Qt-free: which run folder holds the student (one run, or one seed /
grid point of a sweep) and which files the export writes into the output folder."""

from __future__ import annotations

from pathlib import Path

from ...core.store.projects import RunInfo
from ...core.store import summary as summary_mod
from ...core.store.files import RunDir


def has_student(folder: Path) -> bool:
    """True when a run folder holds a finished distilled student (what `kdstudio export` needs)."""
    return RunDir(folder).checkpoint("distill").is_file()


def _folder(run: RunInfo, listed: Path) -> Path:
    """A sub-run folder as sweep.json lists it; a relative path (a sweep run with a relative --out) or a moved
    project is found again under the sweep folder as <point>/seed-<s>."""
    if listed.is_absolute() and listed.is_dir():
        return listed
    return Path(run.path) / listed.parent.name / listed.name


def sub_runs(run: RunInfo) -> list[dict]:
    """The runs of a sweep (one per seed and grid point), in the order they ran, each with its own summary:
    {"folder", "seed", "point" (label, "" without a grid), "summary", "student", "kd_gain", "val", "best",
    "exportable"}. `best` marks the seeds of the sweep's best point. [] for a single run."""
    if not run.is_sweep:
        return []
    best = next((r.get("label") for r in run.summary.get("rows", []) if r.get("best")), None)
    out = []
    for listed in run.sub_runs():
        folder = _folder(run, Path(listed))
        summary = summary_mod.read_dict(RunDir(folder).summary) or {}
        student = summary.get("student") or {}
        label = folder.parent.name
        seed = folder.name.removeprefix("seed-")
        out.append({"folder": folder, "seed": seed, "point": "" if label == "base" else label,
                    "summary": summary, "status": summary.get("status", "incomplete"),
                    "student": student.get("accuracy"), "val": student.get("val_accuracy"),
                    "kd_gain": summary.get("kd_gain"), "best": best is not None and label == best,
                    "exportable": summary.get("status") == "completed" and has_student(folder)})
    return out


def exportable(run: RunInfo) -> bool:
    """A finished single run with a student, or a sweep with at least one such seed / grid point."""
    if run.is_sweep:
        return any(s["exportable"] for s in sub_runs(run))
    return run.status == "completed" and has_student(run.path)


def default_sub(subs: list[dict]) -> int:
    """Index of the sub-run to offer first: of the best point, the seed with the highest validation accuracy
    (the test split stays out of the choice); else the first exportable one; -1 when none can be exported."""
    ok = [i for i, s in enumerate(subs) if s["exportable"]]
    best = [i for i in ok if subs[i]["best"]] or ok
    if not best:
        return -1
    return max(best, key=lambda i: (subs[i]["val"] is not None, subs[i]["val"] or 0.0, -i))


def sub_label(sub: dict) -> str:
    """'seed 1' or 'temperature-4 · seed 1'."""
    return f"{sub['point']} · seed {sub['seed']}" if sub["point"] else f"seed {sub['seed']}"


def files_written(run_folder: Path, formats: list[str], quantize: str) -> list[str]:
    """Names of the files an export of this run writes into its output folder: one per format, the shared
    arch JSON, the model card (MODEL_CARD.md, model_card.json) and its plots (see core.export, core.modelcard)."""
    from ...core.outputs import export as export_mod
    from ...core.outputs import modelcard
    names = [export_mod.file_name(f, quantize) for f in formats if f in export_mod.EXTENSIONS]
    names += [export_mod.arch_file_name(quantize), modelcard.MARKDOWN, modelcard.JSON]
    folder = Path(run_folder)
    if RunDir(folder).metrics.is_file():
        names.append(modelcard.LOSS_PNG)
    if RunDir(folder).evaluation.is_file():
        names.append(modelcard.CONFUSION_PNG)
    return names


def files_replaced(out: Path, run_folder: Path, formats: list[str], quantize: str) -> list[str]:
    """The files of `files_written` that already exist in `out` (the export replaces them)."""
    return [n for n in files_written(run_folder, formats, quantize) if (Path(out) / n).exists()]
