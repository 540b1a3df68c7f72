"""The stages of a run, in pipeline order; each reads and fills the shared pipeline object `p`."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .. import events as ev
from .. import losses, models
from ..errors import KDError, RunStopped
from ..outputs.evaluate import accuracy
from ..train.loop import CrossEntropy, StageRunner, StageSpec


def run_all(p) -> None:
    """teacher → distill → baseline (when enabled) → finetune/compress (when enabled) → evaluate → export."""
    teacher_stage(p)
    distill_stage(p)
    if p.cfg.baseline.enabled:
        baseline_stage(p)
    compress_stage(p)
    evaluate_stage(p)
    export_stage(p)


def _begin(p, name: str, **data) -> None:
    p.stage = name
    p.emit(ev.STAGE_STARTED, name, **data)


def _finish(p, name: str, **data) -> None:
    p.emit(ev.STAGE_FINISHED, name, **data)


def _build_student(p) -> torch.nn.Module:
    """The student, with the same initial weights every time it is built in this run (fair baseline)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(p.cfg.seed + 1)
        return models.build_student(p.cfg, p.data.num_classes, p.data.input_shape)


def train_stage(p, spec: StageSpec, checkpoint: Path | None = None, seed_offset: int = 17) -> object:
    """Run one training stage, resuming from its checkpoint (default: the stage's own) when there is one."""
    cfg = p.cfg
    spec.model.to(p.device)
    if p.device.type == "cuda" and p.x_train.dim() == 4:
        spec.model.to(memory_format=torch.channels_last)
    ckpt = checkpoint or p.rd.checkpoint(spec.name)
    runner = StageRunner(spec, x=p.x_train, y=p.y_train, x_val=p.x_val, y_val=p.y_val, device=p.device,
                         amp_dtype=p.amp_dtype, emit=p.emit, control=p.control,
                         checkpoint_path=ckpt, seed=cfg.seed + seed_offset)
    if p.resume and ckpt.is_file():
        runner.load_checkpoint(torch.load(ckpt, map_location=p.device, weights_only=True))
        p.emit(ev.LOG, spec.name, message=f"Resumed {spec.name} at epoch {runner.epoch + 1}, "
               f"step {runner.step_in_epoch + 1}.")
    return runner.run()


def _completed(p, name: str) -> dict | None:
    """The checkpoint of a stage that already finished (resume), else None."""
    ckpt = p.rd.checkpoint(name)
    if p.resume and ckpt.is_file():
        state = torch.load(ckpt, map_location=p.device, weights_only=True)
        if state.get("complete"):
            return state
    return None


def _load_file_teacher(p) -> torch.nn.Module:
    """The teacher file (plus any extra teachers), fine-tuned when asked; resumes a finished fine-tune."""
    from ..models import teacher_io
    cfg, t = p.cfg, p.cfg.teacher
    warn = lambda m: p.emit(ev.WARNING, "teacher", message=m)  # noqa: E731
    teacher = teacher_io.load_teacher(cfg, p.data, p.device, warn=warn)
    p.emit(ev.LOG, "teacher", message=f"Loaded teacher {t.path} ({teacher_io.info(teacher).get('format', '?')}).")
    if t.finetune_layers:
        ft = teacher_io.prepare_finetune(teacher, t.finetune_layers)
        done = _completed(p, "teacher")
        if done:
            ft.load_state_dict(done["model"])
            p.emit(ev.LOG, "teacher", message="Teacher fine-tune already finished in this run folder; loaded it.")
        else:
            p.emit(ev.LOG, "teacher", message=f"Fine-tuning the last {t.finetune_layers} layer(s) of the teacher "
                   f"for {t.finetune_epochs} epoch(s); the rest stays frozen.")
            train_stage(p, StageSpec("teacher", ft, CrossEntropy(), t.finetune_epochs, t.lr, cfg.distill.optimizer,
                                cfg.distill.weight_decay, cfg.distill.scheduler, cfg.data.batch_size,
                                augment=cfg.data.augment, log_every=cfg.distill.log_every))
        teacher = teacher_io.finish_finetune(ft)
    if t.extra_paths:
        extras = []
        for path in t.extra_paths:
            one = cfg.copy()
            one.teacher.path, one.teacher.finetune_layers = path, 0
            extras.append(teacher_io.load_teacher(one, p.data, p.device, warn=warn))
        if t.weights and len(t.weights) != 1 + len(extras):
            raise KDError(f"teacher.weights has {len(t.weights)} entries but there are {1 + len(extras)} teachers; "
                          "give one weight per teacher or leave it empty.")
        teacher = losses.ensemble([teacher, *extras], t.weights or None, cfg.distill.temperature).to(p.device)
        p.emit(ev.LOG, "teacher", message=f"Multi-teacher: averaging the softened outputs of {1 + len(extras)} "
               "teachers.")
    return teacher


def _train_teacher(p) -> torch.nn.Module:
    """A zoo teacher trained here on the labels (or loaded from this run's finished checkpoint)."""
    cfg, t = p.cfg, p.cfg.teacher
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        teacher = models.build(t.arch, p.data.num_classes, p.data.input_shape, t.width, t.depth)
    done = _completed(p, "teacher")
    if done:
        teacher.load_state_dict(done["model"])
        teacher.to(p.device)
        p.emit(ev.LOG, "teacher", message="Teacher already trained in this run folder; loaded its checkpoint.")
    else:
        train_stage(p, StageSpec("teacher", teacher, CrossEntropy(), t.epochs, t.lr, cfg.distill.optimizer,
                            cfg.distill.weight_decay, cfg.distill.scheduler, cfg.data.batch_size,
                            augment=cfg.data.augment, log_every=cfg.distill.log_every))
    return teacher


def teacher_stage(p) -> None:
    """Train the teacher (source = "train") or load it (source = "file"), check it, then freeze it."""
    from ..models import teacher_io
    cfg, t = p.cfg, p.cfg.teacher
    _begin(p, "teacher", source=t.source, arch=t.arch, path=t.path)
    for message in getattr(p.data, "warnings", []):
        p.emit(ev.WARNING, "teacher", message=message)
    # The student must accept the data before any time is spent on the teacher.
    student = _build_student(p).to(p.device)
    teacher_io.check_model(student, p.data, p.device, role="student")
    uses_features = cfg.distill.method in losses.feature_methods() or bool(cfg.distill.feature_method)
    if t.source == "train" and uses_features:
        # Layer names and shapes are checked on an untrained teacher of the same arch, so a bad pair is
        # reported before the teacher trains, not after.
        probe = models.build(t.arch, p.data.num_classes, p.data.input_shape, t.width, t.depth).to(p.device)
        losses.build_objective(cfg.distill, teacher=models.freeze(probe), student=student,
                               example_input=p.x_train[:cfg.data.batch_size]).remove()
    p.teacher = _train_teacher(p) if t.source == "train" else _load_file_teacher(p)
    models.freeze(p.teacher)
    teacher_io.check_method(p.teacher, cfg.distill)
    sanity = teacher_io.sanity_check(p.teacher, p.data, p.device, skip=t.skip_sanity_check)
    if not sanity.ok:
        p.emit(ev.WARNING, "teacher", message=sanity.message)
    p.teacher_params = models.count_params(p.teacher)
    p.teacher_acc = accuracy(p.teacher, p.x_test, p.y_test)
    p.summary["teacher"] = {"arch": t.arch if t.source == "train" else teacher_io.info(p.teacher).get("arch", t.arch),
                            "source": t.source, "params": p.teacher_params, "accuracy": p.teacher_acc,
                            "val_accuracy": accuracy(p.teacher, p.x_val, p.y_val), "sanity": sanity.to_dict()}
    _finish(p, "teacher", params=p.teacher_params, accuracy=p.teacher_acc)


def _student_stage(p, name: str, make_objective, teacher) -> tuple[torch.nn.Module, object]:
    """Train a fresh student with the objective `make_objective(student)` builds (hooks removed afterwards)."""
    cfg, d = p.cfg, p.cfg.distill
    student = _build_student(p)
    done = _completed(p, name)
    if done:
        student.load_state_dict(done["model"])
        student.to(p.device)
        p.emit(ev.LOG, name, message=f"{name} already finished in this run folder; loaded its checkpoint.")
        return student, None
    student.to(p.device)
    objective = make_objective(student)
    try:
        for line in getattr(objective, "describe", lambda: [])()[1:]:
            p.emit(ev.LOG, name, message=f"Feature matching: {line}")
        extra = [q for q in objective.parameters() if q.requires_grad]
        spec = StageSpec(name, student, objective, d.epochs, d.lr, d.optimizer, d.weight_decay, d.scheduler,
                         cfg.data.batch_size, augment=cfg.data.augment,
                         mixup=d.mixup if teacher is not None else 0.0, teacher=teacher,
                         cache_teacher=d.cache_teacher, log_every=d.log_every, compile=d.compile,
                         extra_params=extra)
        return student, train_stage(p, spec)
    finally:
        getattr(objective, "remove", lambda: None)()  # unhook before evaluate/export


def distill_stage(p) -> None:
    """Distil the teacher into a fresh student."""
    cfg = p.cfg

    def objective(student):
        return losses.build_objective(cfg.distill, teacher=p.teacher, student=student,
                                      example_input=p.x_train[:cfg.data.batch_size]).to(p.device)

    _begin(p, "distill", method=cfg.distill.method, student=cfg.student.arch,
           feature_method=cfg.distill.feature_method, terms_doc=losses.available()[cfg.distill.method]["doc"])
    p.student, res = _student_stage(p, "distill", objective, p.teacher)
    p.student_params = models.count_params(p.student)
    p.summary["student"] = {"arch": cfg.student.arch, "params": p.student_params,
                            "accuracy": accuracy(p.student, p.x_test, p.y_test)}
    p.summary["distill"] = {"epochs": cfg.distill.epochs, "method": cfg.distill.method,
                            **_timing(p, "distill", res)}
    _finish(p, "distill", accuracy=p.summary["student"]["accuracy"])


def baseline_stage(p) -> None:
    """The same student from the same initial weights, trained on labels only with the same budget."""
    _begin(p, "baseline", student=p.cfg.student.arch)
    p.baseline, res = _student_stage(p, "baseline", lambda student: CrossEntropy(), None)
    p.summary["baseline"] = {"accuracy": accuracy(p.baseline, p.x_test, p.y_test),
                             "params": models.count_params(p.baseline),
                             "wall_s": _timing(p, "baseline", res)["wall_s"]}
    _finish(p, "baseline", accuracy=p.summary["baseline"]["accuracy"])


def _timing(p, name: str, res) -> dict:
    """Speed, wall time and cache use of a student stage; from the earlier summary when it finished before a resume."""
    if res is None:
        prev = p.previous_summary.get(name) or {}
        return {k: prev.get(k) for k in ("samples_per_s", "wall_s", "teacher_cache", "timed_epochs")}
    return {"samples_per_s": res.samples_per_s, "wall_s": res.wall_s, "teacher_cache": res.teacher_cache,
            "timed_epochs": res.timed_epochs}


def _student_factory(p):
    from ..outputs.artifacts import student_factory
    return student_factory(p.cfg, p.data.num_classes, p.data.input_shape)


def compress_stage(p) -> None:
    """Fine-tune on hard labels, prune, shrink channels, int8, half: the enabled steps, each a variant."""
    from . import compress_stage as compress
    from ..outputs.compress import public_record
    steps = compress.enabled_steps(p.cfg)
    p.variants = []
    if not steps:
        return
    factory = _student_factory(p)
    if "finetune" in steps:
        _begin(p, "finetune", epochs=p.cfg.compress.finetune_epochs, lr=p.cfg.compress.finetune_lr)
        compress.run_finetune(p, factory)
        _finish(p, "finetune", accuracy=accuracy(p.variants[-1]["model"], p.x_test, p.y_test))
    rest = [s for s in steps if s != "finetune"]
    if rest:
        _begin(p, "compress", steps=rest)
        compress.run_compress(p, factory)
        _finish(p, "compress", variants=[v["name"] for v in p.variants])
    p.summary["compress"] = {"steps": steps, "variants": [public_record(v) for v in p.variants]}


def evaluate_stage(p) -> None:
    """Every model on the test split: accuracy, top-5, per class, confusion, ECE, agreement, size, FLOPs, latency;
    evaluation.json gets the detail, summary.json the headline numbers and ratios."""
    from ..outputs.artifacts import flops_parents, write_evaluation
    from ..outputs.evaluate import evaluate_all, summarize
    _begin(p, "evaluate")
    named = {"teacher": p.teacher, "student": p.student}
    if p.summary.get("baseline"):
        named["baseline"] = p.baseline
    for v in getattr(p, "variants", []):
        named[v["name"]] = v["model"]

    def check_stop(name):
        if p.control.stop_requested:
            raise RunStopped()
        p.emit(ev.LOG, "evaluate", message=f"Evaluating {name}.")
    results = evaluate_all(named, p.x_test, p.y_test, p.data.class_names,
                           latency_repeats=p.cfg.evaluate.latency_repeats,
                           gpu=p.device if p.device.type == "cuda" else None,
                           flops_from=flops_parents(getattr(p, "variants", [])), on_model=check_stop,
                           threads=p.cfg.evaluate.cpu_threads)
    summarize(p.summary, results)
    for who, model in (("student", p.student), ("baseline", named.get("baseline"))):
        if model is not None and len(p.y_val):
            p.summary[who]["val_accuracy"] = accuracy(model, p.x_val, p.y_val)
    write_evaluation(p.rd, results, p.data.class_names)
    t, s = p.summary["teacher"], p.summary["student"]
    variants = "".join(f", {k} {r['top1']:.2%}" for k, r in results.items()
                       if k not in ("teacher", "student", "baseline"))
    p.emit(ev.LOG, "evaluate", message=(
        f"Test accuracy: teacher {t['accuracy']:.2%}, student {s['accuracy']:.2%}"
        + (f", baseline {p.summary['baseline']['accuracy']:.2%}" if p.summary["baseline"] else "") + variants
        + f"; student has {p.summary['compression']['params_ratio']:.1f}x fewer parameters."))
    _finish(p, "evaluate", **{k: p.summary[k] for k in ("teacher", "student", "baseline", "compression")},
            table=p.summary["evaluation"]["table"])


def export_stage(p) -> None:
    """Write the configured formats into exports/, each reloaded in its runtime and checked against the live
    model; a format that fails is a warning, the others are still written. Then the model card."""
    from ..outputs.artifacts import PARITY_SAMPLES, pick_source, prepare_export, student_arch_info
    from ..outputs.export import export_all
    from ..outputs.modelcard import write_model_card
    cfg = p.cfg
    if not cfg.export.formats:
        return
    _begin(p, "export", formats=cfg.export.formats, quantize=cfg.export.quantize)
    t0 = time.perf_counter()
    d = p.data
    variants = getattr(p, "variants", [])
    named = {"student": p.student, **{v["name"]: v["model"] for v in variants}}
    name = pick_source(named, variants, cfg.export.model)
    plan = next((v.get("plan") or {} for v in variants if v["name"] == name), {})
    source = named[name]
    device = next(source.parameters()).device
    live, factory, float_model = prepare_export(source, _student_factory(p), plan, cfg.export.quantize,
                                                d.x_train[:cfg.compress.calibration_samples])
    info = {**student_arch_info(cfg, d, plan), "model": name}
    result = export_all(live, factory, info, cfg.export.formats, p.rd.exports, d.x_test[:PARITY_SAMPLES],
                        quantize=cfg.export.quantize, float_model=float_model,
                        latency_repeats=min(cfg.evaluate.latency_repeats, 20), threads=cfg.evaluate.cpu_threads)
    source.to(device)
    for e in result["exports"]:
        e["model"] = name
    p.summary["exports"] = result["exports"]
    for e in p.summary["exports"]:
        p.emit(ev.LOG, "export", message=f"Exported {e['format']}: {e['path']} ({e['bytes']:,} bytes, "
               f"max |diff| {e['max_abs_diff']:.2e}, top-1 agreement {e['top1_agreement']:.2%}).")
    for f in result["failed"]:
        p.emit(ev.WARNING, "export", message=f"{f['format']} not exported: {f['error']}")
    if result["failed"]:
        p.summary["export_failed"] = result["failed"]
    card = write_model_card(p.rd, p.summary, cfg)
    p.emit(ev.LOG, "export", message=f"Model card: {card['markdown']}")
    _finish(p, "export", exports=p.summary["exports"], failed=result["failed"], wall_s=time.perf_counter() - t0)
