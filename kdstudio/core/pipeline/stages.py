"""The stages of a run, in pipeline order. Each receives the RunContext (and what earlier stages returned) and
returns a typed result; none writes the summary (the engine builds it from RunResults)."""

from __future__ import annotations

import time

import torch

from .. import losses, models
from ..errors import KDError, RunStopped
from ..models import finetune, teacher_io
from ..models.frozen import FrozenTeacher
from ..outputs.evaluate import accuracy
from ..store.summary import ModelEntry, StageTiming, ratio_said
from ..train import distributed
from ..train.checkpoints import damaged, read_checkpoint
from ..train.hooks import student_hooks
from ..train.loop import CrossEntropy
from . import reuse
from .compress_stage import compress_stage
from .context import RunContext, RunResults, StudentResult, TeacherResult, clip_hooks, stage_spec


def run_all(ctx: RunContext, results: RunResults, summary_now) -> None:
    """teacher → distill → baseline (when enabled) → finetune/compress (when enabled) → evaluate → export.
    `results` fills as the stages return; `summary_now()` builds the summary so far (for the model card)."""
    results.teacher = teacher_stage(ctx)
    results.student, results.distill_timing = distill_stage(ctx, results.teacher.teacher)
    if ctx.cfg.baseline.enabled:
        results.baseline = baseline_stage(ctx)
    if not distributed.leave():  # under DDP the training stages ran on every rank; rank 0 alone goes on
        return
    results.compress_steps, results.variants = compress_stage(ctx, results.student.model)
    results.evaluation = evaluate_stage(ctx, results)
    if ctx.cfg.export.formats:
        results.exports, results.export_failed = export_stage(ctx, results, summary_now)


def build_student(ctx: RunContext) -> torch.nn.Module:
    """The student, with the same initial weights every time it is built in this run (fair baseline)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.cfg.seed + 1)
        return models.build_student(ctx.cfg, ctx.data.num_classes, ctx.data.input_shape)


# ---- teacher ----------------------------------------------------------------------------------------------

def _load_file_teacher(ctx: RunContext) -> torch.nn.Module:
    """The teacher file (plus any extra teachers), fine-tuned when asked; resumes a finished fine-tune."""
    cfg, t = ctx.cfg, ctx.cfg.teacher
    bundle = ctx.data.bundle
    teacher = teacher_io.load_teacher(cfg, bundle, ctx.device, warn=ctx.warn)
    ctx.log(f"Loaded teacher {t.path} ({teacher_io.info(teacher).get('format', '?')}).")
    if t.finetune_layers:
        ft = finetune.prepare_finetune(teacher, t.finetune_layers)
        done = ctx.completed_checkpoint("teacher")
        if done:
            ft.load_state_dict(done["model"])
            ctx.log("Teacher fine-tune already finished in this run folder; loaded it.")
        else:
            ctx.log(f"Fine-tuning the last {t.finetune_layers} layer(s) of the teacher for {t.finetune_epochs} "
                    "epoch(s); the rest stays frozen.")
            ctx.train(stage_spec(ctx, "teacher", ft, CrossEntropy(), t.finetune_epochs, t.lr), hooks=clip_hooks(ctx))
        teacher = finetune.finish_finetune(ft)
    if t.extra_paths:
        extras = []
        for path in t.extra_paths:
            one = cfg.copy()
            one.teacher.path, one.teacher.finetune_layers = path, 0
            extras.append(teacher_io.load_teacher(one, bundle, ctx.device, warn=ctx.warn))
        if t.weights and len(t.weights) != 1 + len(extras):
            raise KDError(f"teacher.weights has {len(t.weights)} entries but there are {1 + len(extras)} teachers; "
                          "give one weight per teacher or leave it empty.")
        teacher = losses.ensemble([teacher, *extras], t.weights or None, cfg.distill.temperature).to(ctx.device)
        ctx.log(f"Multi-teacher: averaging the softened outputs of {1 + len(extras)} teachers.")
    return teacher


def _train_teacher(ctx: RunContext) -> tuple[torch.nn.Module, str | None]:
    """A zoo teacher trained here on the labels, or loaded from this run's finished checkpoint, or a stored teacher
    of an earlier run (reuse). Returns (teacher, the run it was reused from or None)."""
    cfg, t = ctx.cfg, ctx.cfg.teacher
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        teacher = models.build(t.arch, ctx.data.num_classes, ctx.data.input_shape, t.width, t.depth)
    done = ctx.completed_checkpoint("teacher")
    reused_from = None
    if done:
        teacher.load_state_dict(done["model"])
        teacher.to(ctx.device)
        ctx.log("Teacher already trained in this run folder; loaded its checkpoint.")
        before = ctx.previous.teacher if ctx.previous else None
        reused_from = before.reused_from if before else None
    elif ctx.reused_teacher is not None:
        stored = ctx.reused_teacher
        # rank 0 links it into its run folder and reads it; every rank loads those same weights (broadcast)
        weights = distributed.from_main(lambda: reuse.adopt_teacher(stored, ctx.rd, "cpu")["model"])
        try:
            teacher.load_state_dict(weights)
        except RuntimeError as e:  # weights of another shape: the data's classes or input changed
            raise damaged(stored.weights, str(e).splitlines()[0][:120]) from None
        teacher.to(ctx.device)
        _check_picked(ctx, stored)
        reused_from = stored.run
        acc = stored.accuracy
        ctx.log(f"Teacher: reused from run {stored.run} (stored teacher {stored.id}"
                + (f", test accuracy {acc:.2%}" if isinstance(acc, (int, float)) else "") + "); not trained again.",
                reused_from=reused_from)
    else:
        ctx.train(stage_spec(ctx, "teacher", teacher, CrossEntropy(), t.epochs, t.lr), hooks=clip_hooks(ctx))
    return teacher, reused_from


def _keep_teacher(ctx: RunContext, module, entry: ModelEntry, reused_from: str | None) -> str | None:
    """Store a teacher trained here for later runs (a failed write is a warning: the run goes on); its id."""
    if ctx.reused_teacher is not None:
        return ctx.reused_teacher.id
    if not distributed.is_main():  # under DDP every rank trained the same weights; rank 0 alone keeps them
        return None
    try:
        stored = reuse.store_teacher(ctx.teachers, ctx.cfg, module, entry, ctx.rd, ctx.data, ctx.teacher_key)
    except (KDError, OSError) as e:
        ctx.warn(f"The teacher was not stored for later runs ({e}); this run goes on.")
        return None
    if reused_from is None:
        ctx.log(f"Teacher stored as {stored.id} in {ctx.teachers.root}; later runs with the same settings reuse it.")
    return stored.id


def _check_picked(ctx: RunContext, stored) -> None:
    """A teacher picked by id may come from other data or another split: say so (it may have seen test samples)."""
    key = stored.meta.get("key") or {}
    mine = (ctx.teacher_key or reuse.teacher_key(ctx.cfg))[1]
    if ctx.cfg.teacher.reuse != "auto" and (key.get("data") != mine["data"] or key.get("seed") != mine["seed"]):
        ctx.warn(f"Stored teacher {stored.id} was trained on other data or another split (seed {key.get('seed')}); "
                 "it may have seen this run's test samples, so the accuracies here may be optimistic.")


def teacher_stage(ctx: RunContext) -> TeacherResult:
    """Train the teacher (source = "train") or load it (source = "file"), check it, then freeze it (once)."""
    cfg, t, data = ctx.cfg, ctx.cfg.teacher, ctx.data
    ctx.begin("teacher", source=t.source, arch=t.arch, path=t.path)
    for message in getattr(data.bundle, "notes", []):
        ctx.log(message)
    for message in getattr(data.bundle, "warnings", []):
        ctx.warn(message)
    # The student must accept the data before any time is spent on the teacher.
    student = build_student(ctx).to(ctx.device)
    teacher_io.check_model(student, data.bundle, ctx.device, role="student")
    uses_features = cfg.distill.method in losses.feature_methods() or bool(cfg.distill.feature_method)
    if t.source == "train" and uses_features:
        # Layer names and shapes are checked on an untrained teacher of the same arch, so a bad pair is
        # reported before the teacher trains, not after.
        probe = FrozenTeacher(models.build(t.arch, data.num_classes, data.input_shape, t.width, t.depth)
                              .to(ctx.device))
        losses.build_objective(cfg.distill, teacher=probe.module, student=student,
                               example_input=data.train.x[:cfg.data.batch_size].to(ctx.device)).remove()
    module, reused_from = _train_teacher(ctx) if t.source == "train" else (_load_file_teacher(ctx), None)
    teacher = FrozenTeacher(module)
    teacher_io.check_method(module, cfg.distill)
    sanity = teacher_io.sanity_check(module, data.bundle, ctx.device, skip=t.skip_sanity_check)
    if not sanity.ok:
        ctx.warn(sanity.message)
    entry = ModelEntry(arch=t.arch if t.source == "train" else teacher_io.info(module).get("arch", t.arch),
                       source=t.source, params=models.count_params(module),
                       accuracy=distributed.accuracy(module, data.test.x, data.test.y),
                       val_accuracy=distributed.accuracy(module, data.val.x, data.val.y), sanity=sanity.to_dict(),
                       trained_by="teacher" if (t.source == "train" or t.finetune_layers) else None,
                       reused_from=reused_from)
    if t.source == "train" and ctx.teachers is not None:
        entry.stored_id = _keep_teacher(ctx, module, entry, reused_from)
    ctx.finish("teacher", params=entry.params, accuracy=entry.accuracy, reused_from=reused_from)
    return TeacherResult(teacher, entry)


# ---- students ---------------------------------------------------------------------------------------------

def _student_stage(ctx: RunContext, name: str, make_objective, teacher, adopted: bool = False) -> StudentResult:
    """Train a fresh student with the objective `make_objective(student)` builds (hooks removed afterwards);
    `adopted`: its finished checkpoint was just taken from another run folder."""
    cfg, d = ctx.cfg, ctx.cfg.distill
    student = build_student(ctx)
    best_path = ctx.rd.checkpoints / f"{name}.best.pt"
    done = read_checkpoint(ctx.rd.checkpoint(name), ctx.device, need=("model",)) if adopted \
        else ctx.completed_checkpoint(name)
    if done:
        try:
            student.load_state_dict(done["model"])
        except RuntimeError as e:  # weights of another architecture
            raise damaged(ctx.rd.checkpoint(name), str(e).splitlines()[0][:120]) from None
        student.to(ctx.device)
        if not adopted:
            ctx.log(f"{name} already finished in this run folder; loaded its checkpoint.", name)
        return StudentResult(student, ModelEntry(arch=cfg.student.arch, trained_by=name), None,
                             _best_model(ctx, best_path))
    student.to(ctx.device)
    objective = make_objective(student)
    try:
        for line in getattr(objective, "describe", lambda: [])()[1:]:
            ctx.log(f"Feature matching: {line}", name)
        extra = [q for q in objective.parameters() if q.requires_grad]
        spec = stage_spec(ctx, name, student, objective, d.epochs, d.lr,
                          mixup=d.mixup if teacher is not None else 0.0, teacher=teacher,
                          cache_teacher=d.cache_teacher, compile=d.compile, extra_params=extra)
        hooks = student_hooks(cfg, student, best_path, has_validation=len(ctx.data.val.y) > 0)
        timing = ctx.train(spec, hooks=hooks)
    finally:
        getattr(objective, "remove", lambda: None)()  # unhook before evaluate/export
    return StudentResult(student, ModelEntry(arch=cfg.student.arch, trained_by=name), timing,
                         _best_model(ctx, best_path))


def _best_model(ctx: RunContext, path) -> torch.nn.Module | None:
    """The best-on-validation student of a stage, when its stage kept one."""
    if not path.is_file():
        return None
    model = build_student(ctx)
    try:
        model.load_state_dict(read_checkpoint(path, ctx.device, need=("model",))["model"])
    except RuntimeError as e:  # weights of another architecture
        raise damaged(path, str(e).splitlines()[0][:120]) from None
    return model.to(ctx.device).eval()


def _chosen(ctx: RunContext, result: StudentResult) -> StudentResult:
    """The weights evaluate.model asks for: the last epoch's, or the best on validation when there is one."""
    if ctx.cfg.evaluate.model == "best" and result.best_model is not None:
        result.model = result.best_model
    return result


def _timing(ctx: RunContext, name: str, res) -> StageTiming:
    """Speed, wall time and cache use of a student stage; from the earlier summary when it finished before a resume."""
    if res is None:
        prev = getattr(ctx.previous, name, None) if ctx.previous else None
        if isinstance(prev, StageTiming):
            return StageTiming(**{**prev.to_json(), "epochs": ctx.cfg.distill.epochs, "method": ctx.cfg.distill.method})
        return StageTiming(epochs=ctx.cfg.distill.epochs, method=ctx.cfg.distill.method)
    return StageTiming(epochs=ctx.cfg.distill.epochs, method=ctx.cfg.distill.method, samples_per_s=res.samples_per_s,
                       wall_s=res.wall_s, teacher_cache=res.teacher_cache, timed_epochs=res.timed_epochs)


def distill_stage(ctx: RunContext, teacher: FrozenTeacher) -> tuple[StudentResult, StageTiming]:
    """Distil the teacher into a fresh student."""
    cfg = ctx.cfg

    def objective(student):
        return losses.build_objective(cfg.distill, teacher=teacher.module, student=student,
                                      example_input=ctx.data.train.x[:cfg.data.batch_size].to(ctx.device)
                                      ).to(ctx.device)

    ctx.begin("distill", method=cfg.distill.method, student=cfg.student.arch,
              feature_method=cfg.distill.feature_method, terms_doc=losses.available()[cfg.distill.method]["doc"])
    result = _chosen(ctx, _student_stage(ctx, "distill", objective, teacher))
    result.entry.params = models.count_params(result.model)
    result.entry.accuracy = distributed.accuracy(result.model, ctx.data.test.x, ctx.data.test.y)
    ctx.finish("distill", accuracy=result.entry.accuracy)
    return result, _timing(ctx, "distill", result.timing)


def baseline_stage(ctx: RunContext) -> StudentResult:
    """The same student from the same initial weights, trained on labels only with the same budget."""
    ctx.begin("baseline", student=ctx.cfg.student.arch)
    reused_from, adopted = None, False
    if ctx.completed_checkpoint("baseline") is not None:  # a resume: finished in this folder (maybe reused then)
        reused_from = ctx.previous.baseline.reused_from if ctx.previous and ctx.previous.baseline else None
    elif ctx.baseline_from is not None:
        folder, label = ctx.baseline_from
        adopted = reuse.adopt_baseline(folder, ctx.rd)
        if adopted:
            reused_from = label
            ctx.log(f"Baseline: reused from run {label} (same student, data and training settings; a baseline does "
                    "not depend on the distillation settings); not trained again.", reused_from=label)
    result = _chosen(ctx, _student_stage(ctx, "baseline", lambda student: CrossEntropy(), None, adopted=adopted))
    e = result.entry
    e.reused_from = reused_from
    e.accuracy = distributed.accuracy(result.model, ctx.data.test.x, ctx.data.test.y)
    e.params = models.count_params(result.model)
    if result.timing is not None:
        e.wall_s = result.timing.wall_s
    elif ctx.previous and ctx.previous.baseline and not reused_from:
        e.wall_s = ctx.previous.baseline.wall_s
    ctx.finish("baseline", accuracy=e.accuracy)
    return result


# ---- evaluate and export ------------------------------------------------------------------------------------

def evaluate_stage(ctx: RunContext, results: RunResults) -> tuple[dict, list, dict | None]:
    """Every model on the test split: accuracy, top-5, per class, confusion, ECE, agreement, size, FLOPs, latency;
    evaluation.json gets the detail; returns (per-model metrics, comparison table, the KD gain's paired test) for
    the summary."""
    from ..outputs import gain
    from ..outputs.artifacts import flops_parents, write_evaluation
    from ..outputs.evaluate import comparison_table, evaluate_all
    ctx.begin("evaluate")
    t0 = time.perf_counter()
    data = ctx.data
    named = {"teacher": results.teacher.teacher.module, "student": results.student.model}
    if results.baseline is not None:
        named["baseline"] = results.baseline.model
    for v in results.variants:
        named[v.name] = v.model
    records = [v.record for v in results.variants]

    def check_stop(name):
        if ctx.control.stop_requested:
            raise RunStopped()
        ctx.log(f"Evaluating {name}.")
    metrics = evaluate_all(named, data.test.x, data.test.y, data.bundle.class_names,
                           latency_repeats=ctx.cfg.evaluate.latency_repeats,
                           gpu=ctx.device if ctx.device.type == "cuda" else None,
                           flops_from=flops_parents(records), on_model=check_stop,
                           threads=ctx.cfg.evaluate.cpu_threads)
    for r in (results.student, results.baseline):
        if r is not None and len(data.val.y):
            r.entry.val_accuracy = accuracy(r.model, data.val.x, data.val.y)
    write_evaluation(ctx.rd, metrics, data.bundle.class_names)
    table = comparison_table(metrics)
    teacher_acc, student_acc = metrics["teacher"]["top1"], metrics["student"]["top1"]
    params_ratio = results.teacher.entry.params / max(metrics["student"]["params"], 1)
    extra = "".join(f", {k} {r['top1']:.2%}" for k, r in metrics.items() if k not in ("teacher", "student", "baseline"))
    ctx.log(f"Test accuracy: teacher {teacher_acc:.2%}, student {student_acc:.2%}"
            + (f", baseline {metrics['baseline']['top1']:.2%}" if "baseline" in metrics else "") + extra
            + f"; student has {ratio_said(params_ratio, 'fewer parameters', 'more parameters')}.")
    gain_stats = gain.from_metrics(metrics)
    if gain_stats is not None:
        ctx.log(f"KD gain: {gain.gain_sentence(gain_stats)}.")
    # its cost, for the next run's ETA (gui/stage_costs.py): seconds for so many models on so many samples
    ctx.finish("evaluate", table=table, wall_s=time.perf_counter() - t0, models=len(named), samples=len(data.test.y))
    return metrics, table, gain_stats


def export_stage(ctx: RunContext, results: RunResults, summary_now) -> tuple[list[dict], list[dict]]:
    """Write the configured formats into exports/, each reloaded in its runtime and checked against the live
    model; a format that fails is a warning, the others are still written. Then the model card."""
    from ..outputs.artifacts import PARITY_SAMPLES, pick_source, prepare_export, student_arch_info, student_factory
    from ..outputs.export import export_all
    from ..outputs.modelcard import write_model_card
    cfg, data = ctx.cfg, ctx.data
    ctx.begin("export", formats=cfg.export.formats, quantize=cfg.export.quantize)
    t0 = time.perf_counter()
    named = {"student": results.student.model, **{v.name: v.model for v in results.variants}}
    records = [v.record for v in results.variants]
    name = pick_source(named, records, cfg.export.model)
    plan = next((v.plan for v in results.variants if v.name == name), {})
    source = named[name]
    device = next(source.parameters()).device
    factory = student_factory(cfg, data.num_classes, data.input_shape)
    live, factory, float_model = prepare_export(source, factory, plan, cfg.export.quantize,
                                                data.bundle.x_train[:cfg.compress.calibration_samples])
    info = {**student_arch_info(cfg, data.bundle, plan), "model": name}
    result = export_all(live, factory, info, cfg.export.formats, ctx.rd.exports, data.bundle.x_test[:PARITY_SAMPLES],
                        quantize=cfg.export.quantize, float_model=float_model,
                        latency_repeats=min(cfg.evaluate.latency_repeats, 20), threads=cfg.evaluate.cpu_threads)
    source.to(device)
    exports = [{**e, "model": name} for e in result["exports"]]
    for e in exports:
        ctx.log(f"Exported {e['format']}: {e['path']} ({e['bytes']:,} bytes, max |diff| {e['max_abs_diff']:.2e}, "
                f"top-1 agreement {e['top1_agreement']:.2%}).")
    for f in result["failed"]:
        ctx.warn(f"{f['format']} not exported: {f['error']}")
    results.exports, results.export_failed = exports, list(result["failed"])
    card = write_model_card(ctx.rd, summary_now().to_json(), cfg)
    ctx.log(f"Model card: {card['markdown']}")
    ctx.finish("export", exports=exports, failed=result["failed"], wall_s=time.perf_counter() - t0,
               format_seconds=dict(result.get("seconds") or {}))
    return exports, list(result["failed"])
