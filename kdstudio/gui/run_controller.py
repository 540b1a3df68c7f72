"""The window's run: which project it belongs to, its worker thread, its state and folder, and what it has said.

The MainWindow owns one RunController. The Train page, the project list, the Run menu and the window's close
observe it; none of them owns the run. The thread itself is worker.RunThread's (`runner`: the QThread running
the engine); this object adds what the window needs around it: the Start/Pause/Resume/Stop actions and their
shortcuts, the project and config a run starts from, the live state (LiveRun: curves, progress, log lines, kept
for a page built or shown later) and the outcome of the last run.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QKeySequence

from ..core import config as config_mod
from ..core.errors import KDError
from ..core.store.projects import Project, RunInfo
from ..core.store.files import SWEEP_TOML, RunDir
from . import worker
from .model import ConfigModel
from .pages.live import LiveRun
from .pages.train_parts import hint_html
from .probe import StallProbe

DAMAGED_HINT = "This project's project.toml is damaged; repair it in the TOML editor to run."
LOG_LINES = 5000  # as many as the Train page's log shows
SWEEP_ON_ONE = ("A sweep (run.seeds or run.sweep) runs in one process; set GPUs to 1 on the Train page, or run "
                "each point on several GPUs.")


class LogLine(NamedTuple):
    """One line of the run's log, with the time it was said."""

    text: str
    stage: str | None
    style: dict
    at: float


class RunController(QObject):
    """One run at a time for the window: start (or resume), pause, resume, stop; state and outcome as signals."""

    started = Signal(object)        # the run folder (Path); `live` holds the new run
    events = Signal(list)           # a batch of core events, already applied to `live`
    logged = Signal(object)         # a LogLine for the run's log
    state_changed = Signal(str)     # "idle" | "running" | "paused" | "stopping"
    finished = Signal(dict)         # the summary of the run that ended (completed or stopped)
    failed = Signal(str, str)       # message, details: the run failed, or could not start
    queue_requested = Signal()      # Start pressed while a run goes: queue the open project's config (run_queue.py)

    def __init__(self, model: ConfigModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.runner = worker.RunThread(self)  # the QThread plumbing: worker, thread, state, run folder
        self.probe = StallProbe(10, self)
        self.project: Project | None = None  # the project of the active (or last) run
        self.live: LiveRun | None = None
        self.log_lines: deque[LogLine] = deque(maxlen=LOG_LINES)
        self.last_summary: dict | None = None
        self.last_error: tuple[str, str] | None = None
        self.last_stall: dict | None = None
        # Asked before the Stop action stops a run (the run queue asks whether to hold the queue); False = go on
        self.confirm_stop: Callable[[], bool] | None = None
        self.processes = 1  # the Train page's GPUs: > 1 runs torchrun with that many processes (run_torchrun.py)
        self.start_act = QAction("▶  Start", self, shortcut=QKeySequence("Ctrl+R"), triggered=self._on_start_act)
        self.pause_act = QAction("❚❚  Pause", self, triggered=self.pause)
        self.resume_act = QAction("▶  Resume", self, triggered=self.resume)
        self.stop_act = QAction("■  Stop", self, shortcut=QKeySequence("Ctrl+."), triggered=self._on_stop_act)
        self.stop_act.setToolTip("Stop after this step; a checkpoint is written so the run can resume")
        self.runner.events.connect(self._on_events)
        self.runner.started.connect(lambda folder: self.started.emit(Path(folder)))
        self.runner.state_changed.connect(self._on_state)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        model.problems_changed.connect(lambda _p: self._update_actions())
        model.project_changed.connect(self._on_project)
        self._update_actions()

    # ---- state ------------------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """"idle", "running", "paused" or "stopping"."""
        return self.runner.state

    @property
    def run_dir(self) -> Path | None:
        """The folder of the active (or last started) run."""
        return self.runner.run_dir

    @property
    def running(self) -> bool:
        """True while a run's thread is alive."""
        return self.runner.is_active()

    def blocker(self) -> str:
        """Why Start is disabled, as rich text whose link names the key to fix; "" when nothing blocks it."""
        p = self.model.project
        if p is not None and p.damaged:
            return DAMAGED_HINT
        problems = self.model.problems
        if problems:  # during a run too: they block Queue as they block Start
            hint = hint_html(*problems[0], more=len(problems) - 1)
            return hint.replace("Start is", "Queue is", 1) if self.running else hint
        return ""

    # ---- control ----------------------------------------------------------------------------------------
    def start(self, resume: RunInfo | None = None, config=None, project: Project | None = None) -> bool:
        """Start a run of the open project's config, or of `config` (a run's config with other seeds, a queued
        snapshot) in a new folder of the open project (or of `project`), or resume a stopped run; False when it
        cannot start."""
        project = project or self.model.project
        if self.running or project is None or project.damaged:
            return False
        self.model.save_now()
        if self.processes > 1 and ((Path(resume.path) / SWEEP_TOML).is_file() if resume is not None else
                                   self._is_sweep(config if config is not None else self.model.cfg)):
            self._on_failed(SWEEP_ON_ONE, "")
            return False
        if resume is None:
            if config is None and not self.model.valid:
                return False
            if config is not None:
                try:
                    config_mod.validate(config)
                except KDError as e:  # a ConfigError, or a choice whose library has not loaded yet
                    self._on_failed(str(e), "")
                    return False
            cfg, out = (config if config is not None else self.model.cfg).copy(), project.new_run_dir()
            try:
                out.mkdir(parents=True)
            except OSError as e:
                self._on_failed(f"Cannot create the run folder '{out}' ({e.strerror or e}).", "")
                return False
        else:
            out = Path(resume.path)
            source = out / SWEEP_TOML if (out / SWEEP_TOML).is_file() else RunDir(out).config
            try:
                cfg = config_mod.load(source)
            except config_mod.ConfigError as e:
                self._on_failed(str(e), "")
                return False
        self.project = project
        self.live = LiveRun(cfg, out, resume=resume is not None)
        self.last_summary = self.last_error = None
        self.log_lines.clear()
        self.runner.start(None if resume else cfg, out, resume=resume is not None,  # -> state "running", started
                          nproc=self.processes)
        what = f"sweep of {self.live.sweep_total} runs" if self.live.sweep_total else "run"
        self.log(f"{'Resuming' if resume else 'Starting'} {what} {out.name} in {out}")
        self.probe.start()
        return True

    @staticmethod
    def _is_sweep(cfg) -> bool:
        return cfg is not None and (bool(cfg.run.seeds) or bool(cfg.run.sweep))

    def _on_start_act(self) -> None:
        """Start, or while a run goes (the action then reads "Queue"), queue the open project's config."""
        if self.running:
            self.queue_requested.emit()
        else:
            self.start()

    def _on_stop_act(self) -> None:
        if self.confirm_stop is None or self.confirm_stop():
            self.stop()

    def pause(self) -> None:
        """Ask the engine to wait before its next step."""
        self.runner.pause()

    def resume(self) -> None:
        """Let a paused run go on."""
        self.runner.resume()

    def stop(self) -> None:
        """Ask the run to stop cleanly (checkpoint first)."""
        if self.running and self.state in ("running", "paused"):
            self.runner.stop()
            self.log("Stop requested: finishing this step and writing a checkpoint…")

    def wait(self, ms: int = 30000) -> bool:
        """Block until the run's thread has ended (for shutdown); True when it did."""
        return self.runner.wait(ms)

    def log(self, text: str, stage: str | None = None, **style) -> None:
        """Add a line to the run's log (kept, and sent to whoever shows it)."""
        line = LogLine(text, stage, style, time.time())
        self.log_lines.append(line)
        self.logged.emit(line)

    # ---- from the thread --------------------------------------------------------------------------------
    def _on_events(self, batch: list) -> None:
        if self.live is None:  # a batch left over from before this controller knew the run
            return
        for text, stage, style in self.live.ingest(batch):
            self.log(text, stage, **style)
        self.events.emit(batch)

    def _on_state(self, state: str) -> None:
        self._update_actions()
        self.state_changed.emit(state)

    def _on_finished(self, summary: dict) -> None:
        self._end_probe()
        self.last_summary = summary
        self.log(f"Run {summary.get('status')}.", bold=True)
        self.finished.emit(summary)

    def _on_failed(self, message: str, details: str) -> None:
        self._end_probe()
        self.last_error = (message, details)
        if not (self.log_lines and self.log_lines[-1].text.rstrip().endswith(message)):
            self.log(message, error=True)
        self.failed.emit(message, details)

    def _end_probe(self) -> None:
        if self.probe.active:
            self.probe.stop()
            self.last_stall = self.probe.stats()  # for demo mode and tests; not a message for users

    def _on_project(self, _project) -> None:
        if not self.running:  # another project on screen: the ended run's live view is not shown again
            self.live = None
            self.log_lines.clear()
            self.last_summary = self.last_error = None

    def _update_actions(self) -> None:
        state, p = self.state, self.model.project
        self.start_act.setEnabled(p is not None and not p.damaged and self.model.valid)
        self.start_act.setText("+  Queue" if self.running else "▶  Start")
        self.pause_act.setEnabled(state == "running")
        self.resume_act.setEnabled(state == "paused")
        self.stop_act.setEnabled(state in ("running", "paused"))
        self.start_act.setToolTip(self.blocker() if self.model.problems else
                                  "Queue this project's config as it is now; it runs when the runs before it have "
                                  "ended (Ctrl+R)" if self.running else "Run the pipeline (Ctrl+R)")
