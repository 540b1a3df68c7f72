"""Runs where teams look: TensorBoard and MLflow, fed by the engine's events ([tracking] in the config).

`listen(cfg, rd, sink)` returns the listener that run_single hands its emitter: each tracker sees every event
first, then the event goes on to `sink` (the run folder's recorder). The engine does not know who listens.
A tracker that fails (a missing package, an unreachable server, a full disk) says so once as a warning and stops;
the run goes on, because losing hours of training to a logging problem would be worse than a missing curve.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Callable

from .. import events as ev
from ..config import SECTIONS
from ..store.files import RunDir, atomic_write_json, read_json

TENSORBOARD_DIR = "tensorboard"
MLFLOW_RUN_FILE = "mlflow_run.json"  # the MLflow run id, so that a resumed run logs into the same MLflow run
MLFLOW_STATUS = {"completed": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}

# The settings shown as columns of TensorBoard's HParams table (MLflow gets every setting).
HPARAMS = ("seed", "teacher.arch", "student.arch", "student.width", "student.depth", "distill.method",
           "distill.temperature", "distill.alpha", "distill.epochs", "distill.lr", "distill.optimizer",
           "distill.weight_decay", "distill.scheduler", "data.batch_size", "data.augment")


def listen(cfg, rd: RunDir, sink: Callable[[ev.Event], None]) -> Callable[[ev.Event], None]:
    """The listener for a run's emitter: `sink` itself when [tracking] asks for nothing, else the trackers first."""
    trackers = []
    if cfg.tracking.tensorboard:
        trackers.append(TensorBoardTracker(rd, cfg))
    if cfg.tracking.mlflow.strip():
        trackers.append(MlflowTracker(rd, cfg))
    if not trackers:
        return sink

    def listener(e: ev.Event) -> None:
        for t in trackers:
            t.feed(e, sink)
        sink(e)
    return listener


def flat_settings(cfg) -> dict[str, object]:
    """Every setting as `section.key` -> a plain value (lists and tables as their JSON text)."""
    out: dict[str, object] = {}
    for key, value in cfg.to_dict().items():
        items = value.items() if isinstance(value, dict) and key in SECTIONS else [(None, value)]
        for sub, v in items:
            name = f"{key}.{sub}" if sub else key
            out[name] = v if isinstance(v, (bool, int, float, str)) else json.dumps(v)
    return out


def final_metrics(summary: dict) -> dict[str, float]:
    """The numbers a run ends with: test accuracy of each model and the KD gain (missing ones left out)."""
    out = {}
    for who in ("teacher", "student", "baseline"):
        acc = (summary.get(who) or {}).get("accuracy")
        if isinstance(acc, (int, float)):
            out[f"test_acc/{who}"] = float(acc)
    if isinstance(summary.get("kd_gain"), (int, float)):
        out["kd_gain"] = float(summary["kd_gain"])
    return out


class Tracker:
    """One destination: routes events to start / step / epoch / finish, and turns itself off on the first error."""

    name = package = install = ""

    def __init__(self, rd: RunDir, cfg):
        self.rd, self.cfg = rd, cfg
        self.started = self.closed = False

    def feed(self, e: ev.Event, sink) -> None:
        """Handle one event; on an error, send one warning to `sink` and ignore the rest of the run."""
        if self.closed:
            return
        try:
            if e.kind in (ev.RUN_STARTED, ev.MEMBER_STARTED) and not self.started:
                if importlib.util.find_spec(self.package) is None:
                    raise _Missing()
                self.start()
                self.started = True
            elif not self.started:
                return
            elif e.kind in (ev.STEP, ev.EPOCH):
                self.metrics(e)
            elif e.kind in (ev.RUN_FINISHED, ev.MEMBER_FINISHED, ev.RUN_FAILED):
                status = e.data.get("status") or ("failed" if e.kind == ev.RUN_FAILED else
                                                  (e.data.get("summary") or {}).get("status", "completed"))
                self.closed = True
                self.finish(read_json(self.rd.summary, {}) or {}, status)
        except Exception as err:  # noqa: BLE001 - a tracker never stops the run
            self.closed = True
            why = (f"needs the optional package {self.package}: {self.install}" if isinstance(err, _Missing)
                   else f"failed ({_first_line(err)})")
            sink(ev.Event(ev.WARNING, None, ev.Message(f"{self.name} tracking {why}; the run goes on without it.")))

    def start(self) -> None:
        """Open the destination and record the run's settings."""

    def metrics(self, e: ev.Event) -> None:
        """Record one STEP or EPOCH event."""

    def finish(self, summary: dict, status: str) -> None:
        """Record the final metrics (and files) and close."""


class _Missing(Exception):
    pass


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0][:200] if lines else type(e).__name__


# ---- TensorBoard ----------------------------------------------------------------------------------------

class TensorBoardTracker(Tracker):
    """A logdir in the run folder: `<stage>/<term>` per step, `<stage>/epoch/<term>` per epoch, the HParams table."""

    name, package, install = "TensorBoard", "tensorboard", "pip install tensorboard"

    def start(self):
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(str(self.rd.root / TENSORBOARD_DIR))
        self.writer.add_text("config", "```toml\n" + _config_text(self.rd) + "\n```", 0)

    def metrics(self, e):
        d = e.data
        if e.kind == ev.STEP:
            step = d["global_step"]
            for term, value in d["terms"].items():
                self.writer.add_scalar(f"{e.stage}/{term}", value, step, walltime=e.time)
            self.writer.add_scalar(f"{e.stage}/lr", d["lr"], step, walltime=e.time)
        else:
            for term, value in d["terms"].items():
                self.writer.add_scalar(f"{e.stage}/epoch/{term}", value, d["epoch"], walltime=e.time)
            if d.get("val_acc") is not None:
                self.writer.add_scalar(f"{e.stage}/epoch/val_acc", d["val_acc"], d["epoch"], walltime=e.time)
            self.writer.add_scalar(f"{e.stage}/epoch/lr", d["lr"], d["epoch"], walltime=e.time)

    def finish(self, summary, status):
        from torch.utils.tensorboard.summary import hparams
        settings = flat_settings(self.cfg)
        chosen = {k: settings[k] for k in HPARAMS if k in settings}
        chosen["status"] = status
        metrics = {f"hparam/{k}": v for k, v in final_metrics(summary).items()}
        # Written into this logdir (add_hparams would open a sub-folder) so the HParams row is this run.
        for s in hparams(chosen, metrics):
            self.writer.file_writer.add_summary(s)
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, 0)
        self.writer.close()


def _config_text(rd: RunDir) -> str:
    try:
        return rd.config.read_text(encoding="utf-8").rstrip()
    except OSError:
        return ""


# ---- MLflow ---------------------------------------------------------------------------------------------

class MlflowTracker(Tracker):
    """One MLflow run per KD Studio run: every setting as a param, step and epoch metrics (batched per epoch),
    the final metrics, and exports/ (the student files and the model card) with summary.json as artifacts."""

    name, package, install = "MLflow", "mlflow", "pip install mlflow-skinny"

    def start(self):
        uri = self.cfg.tracking.mlflow.strip()
        if uri.startswith("file:") or "://" not in uri:
            # MLflow 3 keeps its file store in maintenance mode and refuses it unless asked for; the user did.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient
        self.client = MlflowClient(tracking_uri=uri)
        self.pending: list = []
        known = read_json(self.rd.root / MLFLOW_RUN_FILE, {}) or {}
        if known.get("tracking_uri") == uri and known.get("run_id"):
            self.run_id = known["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
        name = self.cfg.tracking.experiment or "kdstudio"
        exp = self.client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(name)
        run = self.client.create_run(exp_id, run_name=self.rd.root.name,
                                     tags={"kdstudio.run_dir": str(self.rd.root)})
        self.run_id = run.info.run_id
        atomic_write_json(self.rd.root / MLFLOW_RUN_FILE, {"tracking_uri": uri, "run_id": self.run_id,
                                                           "experiment_id": exp_id})
        from mlflow.entities import Param
        params = [Param(k, str(v)[:6000]) for k, v in flat_settings(self.cfg).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def metrics(self, e):
        from mlflow.entities import Metric
        d, stamp = e.data, int(e.time * 1000)
        if e.kind == ev.STEP:
            values = {**{f"{e.stage}/{k}": v for k, v in d["terms"].items()}, f"{e.stage}/lr": d["lr"]}
            step = d["global_step"]
        else:
            values = {**{f"{e.stage}/epoch/{k}": v for k, v in d["terms"].items()}, f"{e.stage}/epoch/lr": d["lr"]}
            if d.get("val_acc") is not None:
                values[f"{e.stage}/epoch/val_acc"] = d["val_acc"]
            step = d["epoch"]
        self.pending += [Metric(k, float(v), stamp, step) for k, v in values.items()]
        if e.kind == ev.EPOCH:
            self._flush()

    def _flush(self):
        for i in range(0, len(self.pending), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=self.pending[i:i + 1000])
        self.pending = []

    def finish(self, summary, status):
        from mlflow.entities import Metric
        stamp = int(time.time() * 1000)
        self.pending += [Metric(k, v, stamp, 0) for k, v in final_metrics(summary).items()]
        self._flush()
        exports = self.rd.exports
        if exports.is_dir() and any(exports.iterdir()):
            self.client.log_artifacts(self.run_id, str(exports), "exports")
        from .report import REPORT
        for f in (self.rd.summary, self.rd.config, self.rd.root / REPORT):
            if Path(f).is_file():
                self.client.log_artifact(self.run_id, str(f))
        self.client.set_terminated(self.run_id, MLFLOW_STATUS.get(status, "FINISHED"))
