"""One run of the pipeline: teacher → distill → baseline → compress → evaluate → export, into one run folder.

`run_single` sets up the run (device, data on the device, the plan, the run folder's recorder), runs the stages and
builds summary.json from what they returned. It is called by `engine.run` for a single run and by the sweep for
each point × seed; it does not know who listens.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import random
import time
import traceback
from pathlib import Path
from typing import Callable

import torch

from .. import config as config_mod
from .. import events as ev
from ..config import Config
from ..errors import KDError, RunStopped
from ..outputs import tracking
from ..store import summary as summary_mod
from ..store.event_log import EventLogWriter
from ..store.files import JsonlWriter, RunDir, write_error
from ..store.lock import FolderLock
from ..train import distributed
from ..train.checkpoints import read_checkpoint
from ..store.summary import Summary
from ..store.teachers import TeacherStore, store_root
from .context import DeviceData, RunContext, RunResults
from .plan import RunPlan, plan_run


def resolve_device(name: str) -> torch.device:
    """'auto' → cuda, then mps, then cpu; an explicit device that is absent is a KDError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise KDError(f"device = \"{name}\" but this machine has no CUDA GPU that PyTorch can use; "
                          "use device = \"auto\" or \"cpu\".")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise KDError(f"device = \"{name}\" but only {torch.cuda.device_count()} CUDA device(s) exist.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise KDError("device = \"mps\" but Apple's Metal backend is not available here; use \"auto\" or \"cpu\".")
    return torch.device(name)


def resolve_amp(enabled: bool, device: torch.device) -> tuple[torch.dtype | None, str]:
    """The autocast dtype for this device (None = fp32) and a sentence saying why."""
    if not enabled:
        return None, "Mixed precision off (distill.amp = false)."
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "Mixed precision on: bf16 autocast, losses in fp32."
        return torch.float16, "Mixed precision on: fp16 autocast with a GradScaler, losses in fp32."
    return None, f"Mixed precision off on {device.type}: autocast gains nothing there; training runs in fp32."


def resolve_threads(cfg: Config, bundle) -> tuple[int, str]:
    """PyTorch's intra-op threads for this run, and a sentence saying why (README, "Threads and cores")."""
    cores = max(1, (os.cpu_count() or 1) // distributed.world())  # under DDP the ranks share the machine's cores
    if cfg.run.threads:
        return cfg.run.threads, f"run.threads = {cfg.run.threads}"
    workers = bundle.x_train.workers if bundle.mode == "streamed" else 0
    if cores <= 2:  # measured: on 2 cores one thread is 2× faster idle and up to 20× under load
        return 1, f"{cores} core(s): one thread (a second one contends with the machine's other work)"
    n = max(1, cores - 1 - workers)
    return n, f"{cores} cores, one left free" + (f", {workers} decoding" if workers else "")


def seed_everything(seed: int) -> None:
    """Seed Python, torch (CPU and CUDA)."""
    random.seed(seed)
    torch.manual_seed(seed)


def device_name(device: torch.device) -> str:
    """'cpu', or 'cuda:0 (NVIDIA H100 ...)'."""
    return str(device) if device.type != "cuda" else f"{device} ({torch.cuda.get_device_name(device)})"


class _Silent:
    """The recorder of a rank other than 0 under DDP: rank 0 alone writes the run folder and speaks."""

    def __call__(self, e: ev.Event) -> None:
        pass

    def close(self) -> None:
        pass


# The stages after training whose cost metrics.jsonl keeps (a line each, at their end), and what that line holds.
TIMED_STAGES = ("evaluate", "export")
TIMING_KEYS = ("kind", "stage", "time", "wall_s", "models", "samples", "format_seconds")


class _Recorder:
    """Writes engine events into the run folder's log.txt (describe()), metrics.jsonl and events.jsonl (every
    event, for a window that follows the run from its folder), then forwards them."""

    def __init__(self, rd: RunDir, listener: Callable[[ev.Event], None] | None):
        self.listener = listener
        self.metrics = JsonlWriter(rd.metrics)
        self.events = EventLogWriter(rd.events)
        self.log_path = rd.log
        self.log = open(rd.log, "a", encoding="utf-8")

    def __call__(self, e: ev.Event) -> None:
        try:
            if e.kind in (ev.STEP, ev.EPOCH):
                self.metrics.write(e.record())
            elif e.kind == ev.STAGE_FINISHED and e.stage in TIMED_STAGES:  # their cost, for a later run's ETA
                self.metrics.write({k: v for k, v in e.record().items() if k in TIMING_KEYS})
            self.events.write(e)
            line = ev.log_line(e) if e.kind not in (ev.STEP, ev.RUN_FINISHED) else None
            if line:
                self.log.write(line + "\n")
                self.log.flush()
        except (OSError, KDError) as err:
            if e.kind not in (ev.RUN_FAILED, ev.WARNING):  # recording a failure must not hide that failure
                raise err if isinstance(err, KDError) else write_error(self.log_path, err) from None
        if self.listener:
            self.listener(e)

    def close(self) -> None:
        self.metrics.close()
        self.events.close()
        self.log.close()


RESTART_NOTE = ("This run had stopped before its first checkpoint, so it starts again from the beginning with its "
                "saved config; the earlier attempt's metrics are kept in {old}.")


def prepare(cfg: Config | None, out_dir: str | Path, resume: bool) -> tuple[Config, RunDir, bool]:
    """Validate the config and the run folder; for resume, read the folder's resolved config. Returns (config,
    folder, resume): a resume of a run that stopped before its first checkpoint restarts it (resume False)."""
    rd = RunDir(out_dir)
    if resume:
        if not rd.config.is_file():
            raise KDError(f"Cannot resume: '{rd.root}' holds no run (no config.toml); start a new run with "
                          "`kdstudio run CONFIG --out` instead of --resume.")
        cfg = config_mod.load(rd.config)
        try:
            finished = summary_mod.read(rd.summary)
        except summary_mod.SummaryError:
            finished = None  # damaged: the resume goes on from the checkpoints, and says so later
        if finished is not None and finished.status == "completed":  # nothing to continue; never re-export quietly
            raise KDError(f"'{rd.root}' holds a finished run; there is nothing to resume. `kdstudio eval {rd.root}` "
                          f"evaluates it again and `kdstudio export {rd.root} --format F --force` exports it again.")
        if not any(rd.checkpoints.glob("*.pt")):  # killed or failed before any stage saved: start it again here
            resume = False
    assert cfg is not None
    if not resume and rd.config.exists() and rd.has_checkpoints():
        raise KDError(f"'{rd.root}' already holds a run; continue it with --resume, or choose another --out.")
    if not resume and rd.config.exists() and cfg is not None and not _same_config(cfg, rd.config):
        raise KDError(f"'{rd.root}' holds a run that stopped before its first checkpoint, with another config; "
                      "`kdstudio run --resume --out` restarts it with its own config, or choose another --out.")
    config_mod.validate(cfg)
    rd.create()
    if not rd.config.exists():
        config_mod.save(cfg, rd.config)
    elif not resume:
        _set_aside(rd.metrics)  # a restart: the epochs of the attempt before it are not this run's
    return cfg, rd, resume


def prepare_ranks(cfg: Config | None, out_dir: str | Path, resume: bool) -> tuple[Config, RunDir, bool]:
    """`prepare` alone; under torchrun the ranks join their process group first, rank 0 prepares the folder and
    every other rank receives its config, its resume decision or its error (so all end with the same sentence)."""
    if not distributed.requested():
        return prepare(cfg, out_dir, resume)
    rd = RunDir(out_dir)
    seen = cfg if cfg is not None else (config_mod.load(rd.config) if rd.config.is_file() else None)
    distributed.init_from_env(resolve_device(seen.device if seen is not None else "auto"))
    if distributed.is_main():
        try:
            cfg, rd, resume = prepare(cfg, out_dir, resume)
        except KDError as e:
            distributed.share((str(e), None, False))
            raise
        distributed.share((None, config_mod.dumps(cfg), resume))
        return cfg, rd, resume
    error, text, resume = distributed.share(None)
    if error:
        shared = KDError(error)
        shared.said_by_rank_0 = True  # the CLI prints it once, on rank 0
        raise shared
    return config_mod.loads(text), rd, resume


def _same_config(cfg: Config, path: Path) -> bool:
    try:
        return config_mod.dumps(config_mod.load(path)) == config_mod.dumps(cfg)
    except KDError:
        return False


def _set_aside(path: Path) -> Path | None:
    """Rename an earlier attempt's file to NAME.before-restart[-N] (nothing is deleted)."""
    if not path.is_file():
        return None
    target, n = path.with_name(path.name + ".before-restart"), 2
    while target.exists():
        target, n = path.with_name(f"{path.name}.before-restart-{n}"), n + 1
    path.rename(target)
    return target


# torch.compile's caches (Inductor's kernels, Triton's on a GPU) default to the system temp folder: a run keeps them
# in its own folder instead, so nothing is written outside the run folder
COMPILE_CACHE_VARS = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")


@contextlib.contextmanager
def compile_caches_in(rd: RunDir | None):
    """While inside: torch.compile's caches live in the run folder's cache/torch_compile (rd None: unchanged)."""
    if rd is None:
        yield
        return
    before = {k: os.environ.get(k) for k in COMPILE_CACHE_VARS}
    root = rd.root / "cache" / "torch_compile"
    for k in COMPILE_CACHE_VARS:
        os.environ[k] = str(root / k.split("_")[0].lower())
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _done_stages(rd: RunDir, resume: bool) -> set[str]:
    """Stages whose checkpoint says complete (a resume skips them)."""
    done = set()
    if resume:
        for stage in ("teacher", "distill", "baseline", "finetune"):
            path = rd.checkpoint(stage)
            if path.is_file():
                try:
                    if read_checkpoint(path).get("complete"):
                        done.add(stage)
                except KDError:  # a damaged checkpoint is reported by the stage that reads it
                    pass
    return done


def run_single(cfg: Config | None, out_dir: str | Path, *, on_event: Callable[[ev.Event], None] | None = None,
               control: ev.RunControl | None = None, resume: bool = False, member: dict | None = None,
               teachers: str | Path | None = None, baseline_from: tuple[Path, str] | None = None) -> dict:
    """One run of the pipeline. Standalone it announces RUN_STARTED (its plan) and RUN_FINISHED; as a sweep member
    (`member` = index, total, point, seed) it announces MEMBER_STARTED / MEMBER_FINISHED instead. `teachers`: the
    folder of stored teachers (default: store.teachers.store_root of the run folder); `baseline_from`: (folder,
    name) of an earlier run whose finished baseline this run takes instead of training one (a sweep's)."""
    asked_resume = resume
    cfg, rd, resume = prepare_ranks(cfg, out_dir, resume)
    main = distributed.is_main()  # under DDP the other ranks train and write nothing
    lock = FolderLock(rd.root, "run folder").acquire() if main else None  # a second --resume or window is refused
    try:
        control = control or ev.RunControl()
        recorder = _Recorder(rd, on_event) if main else _Silent()
    except BaseException:
        if lock:
            lock.release()
        raise
    # TensorBoard / MLflow first, when [tracking] asks
    emit = ev.Emitter(tracking.listen(cfg, rd, recorder) if main else recorder)
    if asked_resume and not resume:
        emit(ev.WARNING, None, message=RESTART_NOTE.format(old=f"{rd.metrics.name}.before-restart"))
    base = Summary(started=_dt.datetime.now().isoformat(timespec="seconds"))
    previous = None
    if resume:  # a resumed run keeps the time it first started; the resume time is recorded beside it
        try:
            previous = summary_mod.read(rd.summary)
        except summary_mod.SummaryError as e:
            emit(ev.WARNING, None, message=f"{e} Its timings are not carried over.")
        base.resumed = base.started
        base.started = (previous.started if previous else None) or base.started
    results = RunResults()
    threads_before = torch.get_num_threads()  # the run's thread count is the run's: restored after it
    ctx: RunContext | None = None
    stage = None
    try:
        # under DDP rank 0 alone looks a stored teacher up and stores one; every rank loads the weights it reads
        store = TeacherStore(teachers if teachers is not None else store_root(rd.root))
        ctx = _context(cfg, rd, control, emit, resume, previous, results, member, store, baseline_from)
        from .stages import run_all
        with compile_caches_in(rd if cfg.distill.compile else None):
            run_all(ctx, results, lambda: results.to_summary(Summary(**{**vars(base), "status": "running"})))
        base.status = "completed"
    except RunStopped:
        base.status = "stopped"
        stage = ctx.stage if ctx else None
        emit(ev.LOG, stage, message="Stopped on request; the run can continue from its checkpoint (Resume run "
                                    "in the app, or `kdstudio run … --resume`).")
    except BaseException as e:  # KeyboardInterrupt included: record, then re-raise
        stage = ctx.stage if ctx else None
        base.status = "failed"
        if isinstance(e, KeyboardInterrupt):
            base.error = (f"Interrupted in stage '{stage}'; the last epoch's checkpoint is kept, so the run can "
                          "continue from it (Resume run in the app, or --resume).")
        elif isinstance(e, KDError):
            base.error = str(e)
        else:
            base.error = f"Unexpected error in stage '{stage}': {e!r}"
        emit(ev.RUN_FAILED, stage, message=base.error, details=traceback.format_exc())
        raise
    finally:
        torch.set_num_threads(threads_before)
        base.finished = _dt.datetime.now().isoformat(timespec="seconds")
        summary = results.to_summary(base).to_json()
        try:
            if main:
                summary_mod.write(rd.summary, results.to_summary(base))
        except KDError as write_failed:  # e.g. the disk is full: never hide the error that ended the run
            if base.status != "failed":
                raise
            emit(ev.WARNING, None, message=f"summary.json was not updated: {write_failed}")
        finally:
            if member is not None:
                emit(ev.MEMBER_FINISHED, None, index=member["index"], total=member["total"], status=base.status,
                     run_dir=str(rd.root))
            elif base.status != "failed":
                emit(ev.RUN_FINISHED, None, summary=summary)
            recorder.close()
            if lock:
                lock.release()
    return summary


def _context(cfg, rd, control, emit, resume, previous, results, member, store, baseline_from) -> RunContext:
    """Device, data on the device, the teacher (and baseline) reused from earlier runs, and the plan; announces the
    run (RUN_STARTED or MEMBER_STARTED)."""
    from .reuse import reusable_teacher, teacher_key
    from ..data import load_data
    device = distributed.init_from_env(resolve_device(cfg.device))  # under DDP: this rank's GPU
    amp_dtype, amp_note = resolve_amp(cfg.distill.amp, device)
    seed_everything(cfg.seed)
    results.device = device_name(device) + distributed.describe()
    t0 = time.perf_counter()
    with distributed.main_first():  # rank 0 fills the data caches (converted CSV, ...) that the others then read
        bundle = load_data(cfg, cache_dir=rd.root / "cache")
    load_s = time.perf_counter() - t0
    done = _done_stages(rd, resume)
    key = teacher_key(cfg) if cfg.teacher.source == "train" else None
    # rank 0 decides which stored teacher (if any) every rank uses
    reused = distributed.from_main(lambda: reusable_teacher(cfg, store, key)) if "teacher" not in done else None
    if reused is not None:
        done.add("teacher")
    if baseline_from is not None and cfg.baseline.enabled:
        done.add("baseline")
    planned = plan_run(cfg, distributed.shard_size(len(bundle.y_train)), done, n_test=len(bundle.y_test))
    if member is None:
        emit(ev.RUN_STARTED, None, run_dir=str(rd.root), device=results.device, resumed=resume,
             plan=RunPlan([planned]).to_dict(), config=config_mod.dumps(cfg))
    else:
        emit(ev.MEMBER_STARTED, None, run_dir=str(rd.root), device=results.device, **member,
             stages=planned.to_dict()["stages"])
    emit(ev.LOG, None, message=amp_note)
    emit(ev.LOG, None, message=f"Data '{bundle.name}': {bundle.sizes()} samples, {bundle.num_classes} classes, "
                               f"input {bundle.input_shape} ({load_s:.1f} s).")
    emit(ev.LOG, None, message=f"Data path {bundle.mode_reason}.")
    if bundle.inputs:
        emit(ev.LOG, None, message=bundle.inputs[0].upper() + bundle.inputs[1:] + ".")
    results.data = {"name": bundle.name, "mode": bundle.mode, "inputs": bundle.inputs or None,
                    "preprocessing": bundle.preprocessing}
    from .. import models
    counts = models.planned_counts(cfg, bundle.num_classes, tuple(bundle.input_shape))
    larger = summary_mod.larger_student_warning(*counts) if counts else None
    if larger:  # said before any training, so a mistaken config costs no teacher epochs
        emit(ev.WARNING, None, message=larger)
    threads, why = resolve_threads(cfg, bundle)
    if device.type == "cpu" or cfg.run.threads:
        torch.set_num_threads(threads)
        emit(ev.LOG, None, message=f"CPU threads: {threads} ({why}).")
    return RunContext(cfg, rd, device, amp_dtype, DeviceData.to_device(bundle, device), control, emit, resume,
                      previous, teachers=store, reused_teacher=reused, baseline_from=baseline_from,
                      teacher_key=key)

