"""Seeds and sweeps: the pipeline once per seed and per grid point, mean ± std per point, a comparison table.

`[run] seeds = [0, 1, 2]` repeats the run per seed; `[run] sweep = { "distill.temperature" = [2, 4] }` runs the
grid of every listed numeric setting. The sweep folder holds sweep.toml (the config as given), one run folder per
point and seed (`<point>/seed-<s>/`), sweep.json (every per-seed number and the aggregates) and sweep.md (the
table). The best point is chosen on the student's validation accuracy (the test split stays unseen by the choice);
when there is no validation split, on test accuracy, and the table says so.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from pathlib import Path
from typing import Callable

from .. import config as config_mod
from ..errors import KDError
from ..outputs import gain
from ..store import summary as summary_mod
from ..store.files import SWEEP_JSON, SWEEP_MD, SWEEP_TOML, RunDir, atomic_write_json, atomic_write_text  # noqa: F401
from ..store.lock import FolderLock
from ..store.teachers import TeacherStore, store_root



def is_sweep(cfg) -> bool:
    """True when the config asks for several seeds or a grid."""
    return bool(cfg.run.seeds) or bool(cfg.run.sweep)


def is_sweep_dir(path: str | Path) -> bool:
    """True when the folder holds a sweep (for --resume)."""
    return (Path(path) / SWEEP_TOML).is_file()


def grid(cfg) -> list[dict]:
    """Every grid point as {dotted key: value} (one empty point when there is no sweep)."""
    keys = list(cfg.run.sweep)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(cfg.run.sweep[k] for k in keys))]


def point_label(point: dict) -> str:
    """A folder-safe name of a grid point, e.g. 'temperature-2_alpha-0.5'."""
    if not point:
        return "base"
    parts = [f"{k.split('.')[-1]}-{v:g}" for k, v in point.items()]
    return re.sub(r"[^A-Za-z0-9._-]", "_", "_".join(parts))


def expand(cfg) -> list[tuple[dict, int, object]]:
    """(point, seed, single-run config) for every run of the sweep, grid-major."""
    seeds = list(cfg.run.seeds) or [cfg.seed]
    out = []
    for point in grid(cfg):
        for seed in seeds:
            one = cfg.copy()
            one.run.seeds, one.run.sweep = [], {}
            for k, v in point.items():
                one.set(k, v)
            one.seed = seed
            out.append((point, seed, one))
    return out


def aggregate(values: list) -> dict:
    """Mean, sample standard deviation (n - 1; 0 for one value) and the values themselves, Nones dropped."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return {"mean": None, "std": None, "n": 0, "values": []}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "n": len(vals), "values": vals}


def _get(summary: dict, who: str, key: str):
    return (summary.get(who) or {}).get(key)


def summarize_point(point: dict, runs: list[dict]) -> dict:
    """One table row from the per-seed summaries of a grid point (the KD gain with its paired t-test over seeds)."""
    done = [r for r in runs if r.get("status") == "completed"]
    gains = [_get(r, "student", "accuracy") - _get(r, "baseline", "accuracy") for r in done
             if _get(r, "baseline", "accuracy") is not None]
    return {"point": point, "label": point_label(point), "seeds": [r.get("seed") for r in runs],
            "completed": len(done), "failed": [r.get("error") for r in runs if r.get("status") == "failed"],
            "teacher": aggregate([_get(r, "teacher", "accuracy") for r in done]),
            "student": aggregate([_get(r, "student", "accuracy") for r in done]),
            "student_val": aggregate([_get(r, "student", "val_accuracy") for r in done]),
            "baseline": aggregate([_get(r, "baseline", "accuracy") for r in done]),
            "kd_gain": aggregate(gains), "kd_gain_stats": _point_gain(done, gains)}


def _point_gain(done: list[dict], gains: list[float]) -> dict | None:
    """A paired t-test over the seeds; with one seed, that run's own paired test over its test samples."""
    own = [r["kd_gain_stats"] for r in done if isinstance(r.get("kd_gain_stats"), dict)]
    if len(gains) == 1 and len(own) == 1:
        return own[0]
    return gain.seed_test(gains)


def mark_best(rows: list[dict]) -> str:
    """Set row["best"]; returns the criterion used ("validation" or "test")."""
    use_val = all(r["student_val"]["mean"] is not None for r in rows if r["completed"])
    key = "student_val" if use_val else "student"
    scored = [r for r in rows if r[key]["mean"] is not None]
    best = max(scored, key=lambda r: r[key]["mean"], default=None)
    for r in rows:
        r["best"] = r is best
    return "validation" if use_val else "test"


def _pm(a: dict, scale: float = 100.0, sign: bool = False) -> str:
    if a["mean"] is None:
        return "–"
    return f"{a['mean'] * scale:{'+' if sign else ''}.2f} ± {a['std'] * scale:.2f}"


def format_table(result: dict) -> str:
    """The comparison table as Markdown (accuracies in %, mean ± std over seeds; the best row marked)."""
    keys = list(result["rows"][0]["point"]) if result["rows"] else []
    head = [*keys, "seeds", "student %", "baseline %", "KD gain (points)", "teacher %", "student val %", "best"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        cells = [f"{r['point'][k]:g}" for k in keys] + [str(r["completed"]), _pm(r["student"]), _pm(r["baseline"]),
                                                        _pm(r["kd_gain"], sign=True), _pm(r["teacher"]),
                                                        _pm(r["student_val"]), "**best**" if r["best"] else ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Mean ± sample std over seeds {result['seeds']}; best = highest student {result['criterion']} "
                 "accuracy.")
    for r in result["rows"]:  # the words follow the figures: a paired t-test over the seeds of each point
        if r["kd_gain"]["mean"] is not None:
            where = f"{r['label']}: " if keys else ""
            lines.append(f"- KD gain {where}{gain.gain_sentence(r.get('kd_gain_stats'), r['kd_gain']['mean'])}.")
    return "\n".join(lines) + "\n"


def _reused_stages(members, store: TeacherStore) -> list[set[str]]:
    """Per member, the stages it will not train because the store or an earlier member of the sweep has trained
    them: the teacher (same teacher key) and the baseline (same baseline key)."""
    from .reuse import baseline_key, reusable_teacher, teacher_key
    teachers, baselines, out = set(), set(), []
    for _point, _seed, one in members:
        skipped = set()
        trains = one.teacher.source == "train" and one.teacher.reuse != "never"
        tkey = teacher_key(one)[0] if trains else None
        if trains and (tkey in teachers or reusable_teacher(one, store) is not None):
            skipped.add("teacher")
        teachers.add(tkey)
        if one.baseline.enabled:
            bkey = baseline_key(one)
            if bkey in baselines:
                skipped.add("baseline")
            baselines.add(bkey)
        out.append(skipped)
    return out


def _plan(members, out: Path, resume: bool, store: TeacherStore):
    """The sweep's plan: every point × seed with its stages (data sizes read once per distinct data config)."""
    from ..data import load_data
    from .plan import PlannedRun, RunPlan, plan_run
    sizes: dict[str, int] = {}
    runs = []
    for (point, seed, one), reused in zip(members, _reused_stages(members, store)):
        key = repr(one.data)
        if key not in sizes:
            sizes[key] = len(load_data(one).y_train)
        planned = plan_run(one, sizes[key], reused)
        folder = out / point_label(point) / f"seed-{seed}"
        if resume and (summary_mod.read_dict(RunDir(folder).summary) or {}).get("status") == "completed":
            for stage in planned.stages:
                stage.done = True
        runs.append(PlannedRun(planned.stages, point=dict(point), seed=seed, label=f"{point_label(point)}/seed-{seed}"))
    return RunPlan(runs, sweep=True)


def run_sweep(cfg, out_dir: str | Path, *, on_event: Callable | None = None, control=None, resume: bool = False,
              runner: Callable | None = None) -> dict:
    """Run every (point, seed); completed runs are reused on resume. Announces the plan (RUN_STARTED), then each
    member (MEMBER_STARTED/FINISHED); writes sweep.json and sweep.md; returns {"rows", "runs", "seeds",
    "criterion", "status"}. `runner(cfg, out, on_event, control, resume, member)` defaults to run_single."""
    from .. import events as ev
    from .reuse import baseline_key, run_label
    from .single import run_single
    out = Path(out_dir)
    if resume:
        cfg = config_mod.load(out / SWEEP_TOML)
    elif (out / SWEEP_TOML).exists():
        raise KDError(f"'{out}' already holds a sweep; continue it with --resume, or choose another --out.")
    config_mod.validate(cfg)
    if not is_sweep(cfg):
        raise KDError("This config has neither run.seeds nor run.sweep; use `kdstudio run` for a single run.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        config_mod.save(cfg, out / SWEEP_TOML)
    except OSError as e:
        raise KDError(f"Cannot write the sweep folder '{out}' ({e.strerror or e}); choose another --out.") from None
    lock = FolderLock(out, "sweep folder").acquire()  # a second --resume of this sweep is refused
    try:
        members = expand(cfg)
        emit = ev.Emitter(on_event or (lambda e: None))
        store = TeacherStore(store_root(out))  # every point and seed keeps and finds its teacher there
        if runner is None:
            plan = _plan(members, out, resume, store)
            emit(ev.RUN_STARTED, None, run_dir=str(out), device=None, resumed=resume, plan=plan.to_dict(),
                 config=config_mod.dumps(cfg))

        def run_one(c, o, listener, ctrl, again, member, baseline_from):
            if runner is not None:
                return runner(c, o, listener, ctrl, again, member)
            return run_single(c, o, on_event=listener, control=ctrl, resume=again, member=member,
                              teachers=store.root, baseline_from=baseline_from)

        runs, by_point, status = [], {}, "completed"
        baselines: dict[str, tuple[Path, str]] = {}  # baseline key -> (folder, name) of the first run that trained it
        for index, (point, seed, one) in enumerate(members, start=1):
            folder = out / point_label(point) / f"seed-{seed}"
            member = {"index": index, "total": len(members), "point": dict(point), "seed": seed}
            bkey = baseline_key(one) if one.baseline.enabled and runner is None else None
            old = summary_mod.read_dict(RunDir(folder).summary) if resume else None
            if old and old.get("status") == "completed":
                summary = old
            else:
                # a point that stopped before its first checkpoint restarts in its folder (run_single keeps its log)
                again = resume and (folder / "config.toml").is_file()
                try:
                    summary = run_one(None if again else one, folder, on_event, control, again, member,
                                      baselines.get(bkey))
                except KDError as e:
                    summary = {"status": "failed", "error": str(e)}
            if bkey is not None and bkey not in baselines and summary.get("status") == "completed":
                baselines[bkey] = (folder, run_label(RunDir(folder), store))
            summary = {**summary, "seed": seed, "point": point, "folder": str(folder)}
            runs.append(summary)
            by_point.setdefault(point_label(point), (point, []))[1].append(summary)
            if summary.get("status") == "stopped" or (control is not None and control.stop_requested):
                status = "stopped"
                break
        rows = [summarize_point(p, rs) for p, rs in by_point.values()]
        criterion = mark_best(rows)
        slim = [{k: r.get(k) for k in ("point", "seed", "folder", "status", "error", "teacher", "student", "baseline",
                                       "kd_gain", "kd_gain_stats")} for r in runs]
        result = {"status": status, "seeds": list(cfg.run.seeds) or [cfg.seed], "sweep": dict(cfg.run.sweep),
                  "criterion": criterion, "rows": rows, "runs": slim}
        atomic_write_json(out / SWEEP_JSON, result)
        atomic_write_text(out / SWEEP_MD, format_table(result))
        if runner is None:
            emit(ev.RUN_FINISHED, None, summary=result)
        return result
    finally:
        lock.release()
