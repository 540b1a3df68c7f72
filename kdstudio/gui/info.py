"""Facts the pages show: the method/arch catalog, data shape and parameter counts (these need torch), and
whether a finished run of the project has trained the teacher and the student (read from its run folder).

Torch is imported in a background thread after the window is up; the counts are recomputed (debounced) when the
data, teacher or student settings change, and a stale answer is dropped.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from superqt.utils import qdebounced

from . import tasks
from .model import ConfigModel
from .widgets import fmt_pct

RECOUNT_MS = 350
AFFECTS_MODELS = ("data", "teacher", "student", "seed")
# The settings that make the trained model: when they differ from a run's, that run trained another model.
TRAINED_BY = {"teacher": ("teacher.source", "teacher.arch", "teacher.width", "teacher.depth", "teacher.epochs",
                          "teacher.lr"),
              "student": ("student.arch", "student.width", "student.depth", "student.width_mult",
                          "student.depth_mult")}
TRAINED_VERB = {"teacher": "trained", "student": "distilled"}


def _run_config(run):
    """The config a run (or a sweep) was started with; None when it cannot be read."""
    from ..core import config as config_mod
    from ..core.store.files import SWEEP_TOML, RunDir
    folder = Path(run.path)
    try:
        return config_mod.load(folder / SWEEP_TOML if run.is_sweep else RunDir(folder).config)
    except Exception:  # noqa: BLE001 - an unreadable or older config only means "cannot compare"
        return None


def _test_accuracy(run, role: str) -> tuple[float | None, str]:
    """(test accuracy of `role`, "" or how it was aggregated) from summary.json, else evaluation.json; for a sweep
    the mean over the seeds of its best point."""
    from ..core.store.files import RunDir, read_json
    if run.is_sweep:
        return run.headline().get(role), "mean of the best point"
    acc = (run.summary.get(role) or {}).get("accuracy") if isinstance(run.summary.get(role), dict) else None
    if acc is None:
        try:
            ev = read_json(RunDir(run.path).evaluation, None) or {}
        except (OSError, ValueError):
            ev = {}
        acc = ((ev.get("models") or {}).get(role) or {}).get("top1")
    return acc, ""


def trained_note(project, cfg, role: str) -> str | None:
    """'trained in run 20261127-223105: test accuracy 99.7%' when the project's newest completed run trained
    this model (the teacher from its [teacher] settings, or the distilled student); 'not yet trained with these
    settings (...)' when the settings differ from that run's; None when no completed run trained it."""
    if project is None or project.damaged or cfg is None or (role == "teacher" and cfg.teacher.source != "train"):
        return None
    try:
        runs = project.runs()
    except OSError:
        return None
    for run in runs:
        if run.status != "completed":
            continue
        then = _run_config(run)
        if role == "teacher" and then is not None and then.teacher.source != "train":
            continue  # that run loaded its teacher from a file: it trained none
        acc, how = _test_accuracy(run, role)
        what = f"{'sweep' if run.is_sweep else 'run'} {run.name}"
        result = f"test accuracy {fmt_pct(acc)}" if acc is not None else "no test accuracy recorded"
        keys = TRAINED_BY[role] + tuple(f"data.{k}" for k in cfg.to_dict()["data"])
        if then is not None and any(then.get(k) != cfg.get(k) for k in keys):
            verb = TRAINED_VERB[role]
            return f"not yet {verb} with these settings ({what} {verb} another: {result}{', ' + how if how else ''})"
        entry = run.summary.get(role) if isinstance(run.summary.get(role), dict) else {}
        if entry.get("reused_from"):  # that run did not train it: say which one did
            return f"reused in {what} (trained in run {entry['reused_from']}): {result}"
        return f"{TRAINED_VERB[role]} in {what}: {result}" + (f" ({how})" if how else "")
    return None


def run_problems(info: dict, cfg) -> list[tuple[str, str]]:
    """What building the models found, as (dotted key, sentence): an arch name that builds nothing, a teacher file
    that cannot be loaded. A file waiting for trust is not one (the window asks), nor an ONNX teacher's count."""
    waiting = {u["role"] for u in info.get("untrusted", [])}
    out = []
    for role in ("teacher", "student"):
        message = info.get("errors", {}).get(role)
        if not message or role in waiting or message.startswith("ONNX teacher"):
            continue
        default = "teacher.path" if role == "teacher" and cfg.teacher.source == "file" else f"{role}.arch"
        out.append((info.get("error_keys", {}).get(role) or default, message))
    return out


def data_key(cfg) -> str:
    """The field a data error outlines when the error names none."""
    from ..core.config import SOURCES
    d = cfg.data
    return "data.path" if d.source in SOURCES and SOURCES.meta(d.source)["needs_path"] else "data.source"


class InfoHub(QObject):
    """Loads the catalog once and keeps the model info (parameter counts) of the current config fresh."""

    catalog_ready = Signal(dict)
    info_stale = Signal(str)  # the key whose change makes the shown info out of date (a new count is coming)
    info_ready = Signal(dict)
    info_failed = Signal(str)
    busy = Signal(bool)

    def __init__(self, model: ConfigModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.catalog: dict | None = None
        self.info: dict | None = None
        self.failure: str | None = None  # why the current config has no info (the last info_failed message)
        self._generation = 0
        self._running = False
        self._pending = False
        self._recount = qdebounced(self._compute, RECOUNT_MS, parent=self)  # the last of a burst of edits counts
        model.config_changed.connect(self._on_change)
        self.task = None

    def load_catalog(self) -> None:
        """Import torch and the registries in the background (call once the window is shown)."""
        self.task = tasks.start_task(tasks.load_catalog, owner=self, on_done=self._catalog_done,
                                     on_error=lambda m, d: self._fail(f"PyTorch could not load: {m}"))

    def _fail(self, message: str) -> None:
        self.failure = message
        self.info_failed.emit(message)

    def _catalog_done(self, catalog: dict) -> None:
        import gc
        gc.freeze()  # torch's ~200k long-lived objects leave the collector: no multi-100-ms gen-2 pauses later
        self.catalog = catalog
        self.catalog_ready.emit(catalog)
        self.model.validate()  # the method/arch checks registered themselves on import
        self._compute_now()

    def recount(self) -> None:
        """Count again (a file was just trusted, so the same settings now give another answer)."""
        self._on_change("teacher")

    def _on_change(self, key: str) -> None:
        if key == "" or key.split(".")[0] in AFFECTS_MODELS:
            self._generation += 1
            self.info = self.failure = None
            self.info_stale.emit(key)
            self._recount()

    def _compute_now(self) -> None:
        self._recount.cancel()  # an edit's pending recount would only repeat this one
        self._compute()

    def _compute(self) -> None:
        if self.catalog is None or self.model.cfg is None:
            return
        if self._running:
            self._pending = True
            return
        blocking = [(k, m) for k, m in self.model.config_problems if k.split(".")[0] in AFFECTS_MODELS]
        if blocking:  # building models from an invalid config only produces a raw PyTorch error
            self.info = None
            self.model.set_run_problems([])  # the config's own problems block Start already
            self._fail(f"Fix {blocking[0][0]} first: {blocking[0][1]}")
            return
        self._running, self._pending = True, False
        generation = self._generation
        self.busy.emit(True)
        self.task = tasks.start_task(tasks.model_info, self.model.cfg.copy(), owner=self,
                                     on_done=lambda info: self._done(generation, info),
                                     on_error=lambda m, d: self._failed(generation, m, self.task))

    def _finish(self) -> bool:
        self._running = False
        self.busy.emit(False)
        if self._pending:
            self._compute_now()
            return False
        return True

    def _done(self, generation: int, info: dict) -> None:
        if self._finish() and generation == self._generation:
            self.info = info
            from ..core.store.summary import larger_student_warning
            larger = larger_student_warning(info.get("teacher"), info.get("student"))
            self.model.set_run_problems(run_problems(info, self.model.cfg), [larger] if larger else [])
            self.info_ready.emit(info)

    def _failed(self, generation: int, message: str, task=None) -> None:
        if self._finish() and generation == self._generation:
            # the data could not be read (a CSV without its label column, an unreadable image): the run would
            # fail the same way, so Start waits for the fix; a bug of this check (not a KDError) blocks nothing
            user_error = task is not None and task.user_error
            key = (task.error_key if user_error else None) or data_key(self.model.cfg)
            self.model.set_run_problems([(key, message)] if user_error else [])
            self._fail(message)
