"""The pipeline: teacher → distill → baseline → evaluate → export, from a Config, emitting events.

`run(cfg, out_dir, on_event=..., control=...)` is the one entry point the CLI and the GUI worker use. The engine
does not know who listens; it writes the run folder (config.toml, metrics.jsonl, summary.json, log.txt,
checkpoints/, exports/) and returns the summary.
"""

from __future__ import annotations

import datetime as _dt
import random
import time
import traceback
from pathlib import Path
from typing import Callable

import torch

from .. import config as config_mod
from .. import events as ev
from .. import losses  # noqa: F401  (registers the loss checks used by config validation)
from ..config import Config
from ..errors import KDError, RunStopped
from ..store.files import JsonlWriter, RunDir, atomic_write_json, read_json


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


def seed_everything(seed: int) -> None:
    """Seed Python, torch (CPU and CUDA)."""
    random.seed(seed)
    torch.manual_seed(seed)


def log_line(kind: str, data: dict) -> str:
    """One readable log.txt line for an event: its message, else a short sentence or its kind and its plain values
    (the config, tables and lists stay in config.toml, summary.json and evaluation.json)."""
    if data.get("message"):
        return f"{kind.replace('_', ' ')}: {data['message']}" if kind in (ev.WARNING, ev.RUN_FAILED) \
            else data["message"]
    if kind == ev.EPOCH:
        return ev.epoch_line(data)
    if kind == ev.CHECKPOINT:
        where = "stage complete" if data.get("complete") else f"epoch {data.get('epoch')}, step {data.get('step')}"
        return f"checkpoint written: {Path(str(data.get('path'))).name} ({where})"
    plain = []
    for k, v in data.items():
        if isinstance(v, bool) or v is None or isinstance(v, (dict, list)) or k in ("config", "details"):
            continue
        plain.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    return kind.replace("_", " ") + (": " + ", ".join(plain) if plain else "")


class _Recorder:
    """Turns engine events into the run folder's log.txt and metrics.jsonl, then forwards them."""

    def __init__(self, rd: RunDir, listener: Callable[[ev.Event], None] | None):
        self.listener = listener
        self.metrics = JsonlWriter(rd.metrics)
        self.log = open(rd.log, "a", encoding="utf-8")

    def __call__(self, kind: str, stage: str | None = None, **data) -> None:
        e = ev.Event(kind, stage, data)
        if kind in (ev.STEP, ev.EPOCH):
            self.metrics.write({"kind": kind, "stage": stage, "time": round(e.time, 3), **data})
        # log.txt reads like the window's log: epochs, messages, stage changes; the checkpoint written after
        # every epoch is implied, only a stage's last one and a mid-epoch stop's are worth a line
        routine = kind == ev.CHECKPOINT and not data.get("complete") and not data.get("step")
        if kind not in (ev.STEP, ev.RUN_FINISHED) and not routine:
            stamp = _dt.datetime.fromtimestamp(e.time).strftime("%Y-%m-%d %H:%M:%S")
            self.log.write(f"{stamp} [{stage or 'run'}] {log_line(kind, data)}\n")
            self.log.flush()
        if self.listener:
            self.listener(e)

    def close(self) -> None:
        self.metrics.close()
        self.log.close()


def prepare(cfg: Config | None, out_dir: str | Path, resume: bool) -> tuple[Config, RunDir]:
    """Validate the config and the run folder; for resume, read the folder's resolved config."""
    rd = RunDir(out_dir)
    if resume:
        if not any(rd.checkpoint(s).is_file() for s in ("teacher", "distill", "baseline")):
            raise KDError(f"Cannot resume: '{rd.root}' holds no checkpoint; start a new run instead of --resume.")
        cfg = config_mod.load(rd.config)
    assert cfg is not None
    if not resume and (rd.config.exists() or any(rd.checkpoints.glob("*.pt"))):
        raise KDError(f"'{rd.root}' already holds a run; continue it with --resume, or choose another --out.")
    config_mod.validate(cfg)
    rd.create()
    if not resume:
        config_mod.save(cfg, rd.config)
    return cfg, rd


def run(cfg: Config | None, out_dir: str | Path, *, on_event: Callable[[ev.Event], None] | None = None,
        control: ev.RunControl | None = None, resume: bool = False) -> dict:
    """Run the whole pipeline; returns the summary (also written to summary.json).

    Raises KDError for user mistakes found before the run starts. Once the run has started, failures are
    recorded (summary status "failed", a RUN_FAILED event) and re-raised; a stop request ends with status
    "stopped" and a checkpoint.
    """
    cfg, rd = prepare(cfg, out_dir, resume)
    control = control or ev.RunControl()
    rec = _Recorder(rd, on_event)
    summary: dict = {"status": "running", "started": _dt.datetime.now().isoformat(timespec="seconds"),
                     "device": None, "teacher": None, "student": None, "baseline": None, "distill": None,
                     "exports": []}
    previous = (read_json(rd.summary) or {}) if resume else {}
    if resume:  # a resumed run keeps the time it first started; the resume time is recorded beside it
        summary["resumed"] = summary["started"]
        summary["started"] = previous.get("started", summary["started"])
    pipeline = _Pipeline(cfg, rd, rec, control, summary, resume)
    pipeline.previous_summary = previous  # stages finished before the resume keep their timings from it
    try:
        pipeline.run()
        summary["status"] = "completed"
    except RunStopped:
        summary["status"] = "stopped"
        rec(ev.LOG, pipeline.stage, message="Stopped on request; the run can continue from its checkpoint "
                                             "(Resume run in the app, or `kdstudio run … --resume`).")
    except BaseException as e:  # KeyboardInterrupt included: record, then re-raise
        summary["status"] = "failed"
        if isinstance(e, KeyboardInterrupt):
            summary["error"] = (f"Interrupted in stage '{pipeline.stage}'; the last epoch's checkpoint is kept, "
                                "so the run can continue from it (Resume run in the app, or --resume).")
        elif isinstance(e, KDError):
            summary["error"] = str(e)
        else:
            summary["error"] = f"Unexpected error in stage '{pipeline.stage}': {e!r}"
        rec(ev.RUN_FAILED, pipeline.stage, message=summary["error"], details=traceback.format_exc())
        raise
    finally:
        summary["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
        atomic_write_json(rd.summary, summary)
        if summary["status"] != "failed":
            rec(ev.RUN_FINISHED, None, summary=summary)
        rec.close()
    return summary


class _Pipeline:
    """The stages of one run, sharing data, models and the recorder."""

    def __init__(self, cfg: Config, rd: RunDir, emit, control: ev.RunControl, summary: dict, resume: bool):
        self.cfg, self.rd, self.emit, self.control, self.summary = cfg, rd, emit, control, summary
        self.resume = resume
        self.previous_summary: dict = {}
        self.stage: str | None = None

    def run(self) -> None:
        from ..data import load_data
        from . import stages

        cfg = self.cfg
        self.device = resolve_device(cfg.device)
        self.amp_dtype, amp_note = resolve_amp(cfg.distill.amp, self.device)
        seed_everything(cfg.seed)
        self.summary["device"] = str(self.device) if self.device.type != "cuda" else \
            f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        self.emit(ev.RUN_STARTED, None, run_dir=str(self.rd.root), device=self.summary["device"],
                  resumed=self.resume, config=config_mod.dumps(cfg))
        self.emit(ev.LOG, None, message=amp_note)
        t0 = time.perf_counter()
        self.data = load_data(cfg)
        self.emit(ev.LOG, None, message=f"Data '{self.data.name}': {self.data.sizes()} samples, "
                  f"{self.data.num_classes} classes, input {self.data.input_shape} "
                  f"({time.perf_counter() - t0:.1f} s).")
        to = lambda t: t.to(self.device, non_blocking=True)  # noqa: E731
        d = self.data
        self.x_train, self.y_train = to(d.x_train), to(d.y_train)
        self.x_val, self.y_val, self.x_test, self.y_test = to(d.x_val), to(d.y_val), to(d.x_test), to(d.y_test)
        stages.run_all(self)
