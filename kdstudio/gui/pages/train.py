"""Train page: start / pause / resume / stop, progress with ETA, live plots, log, run history."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QMessageBox, QProgressBar, QScrollArea, QSplitter,
                               QVBoxLayout, QWidget)

from ...core import config as config_mod
from ...core.store.projects import RunInfo
from ...core.store.files import read_metrics
from ..forms import ConfigForm
from ..model import ConfigModel
from ..plots import PlotPanel
from ..probe import StallProbe
from ..series import RunSeries
from ..widgets import Banner
from ..worker import RunController
from .base import section_keys
from .history import RunHistory
from .live import LiveRun
from .train_parts import NO_RUN_TEXT, LogPane, PlotArea, RunControls, hint_html

# The live view (curves, progress bar, status line) redraws at most this often: each change repaints part of the
# window, and redrawing on every 50 ms event batch kept the window repainting.
PLOT_REFRESH_MS = 250


class TrainPage(QWidget):
    """Runs the project's config in the worker thread and shows the run live."""

    run_finished = Signal(dict)      # summary of the run that just ended (completed or stopped)
    run_failed = Signal(str, str)    # message, details
    runs_selected = Signal(list)     # [RunInfo] selected in the history
    goto_problem = Signal(str)       # dotted key of the first problem (the Start hint's link)

    def __init__(self, model: ConfigModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.controller = RunController(self)
        self.probe = StallProbe(10, self)
        self.live: LiveRun | None = None
        self.last_summary: dict | None = None
        self.last_error: tuple[str, str] | None = None
        self.last_stall: dict | None = None
        self._series_cache: dict[str, tuple[float, RunSeries]] = {}
        self._build()
        self.controller.events.connect(self._on_events)
        self.controller.finished.connect(self._on_finished)
        self.controller.failed.connect(self._on_failed)
        self.controller.state_changed.connect(self._on_state)
        self.history.selection_changed.connect(self._on_history_selection)
        self.history.resume_requested.connect(lambda run: self.start(resume=run))
        model.problems_changed.connect(lambda _p: self._update_actions())
        model.project_changed.connect(self._on_project)
        model.config_changed.connect(self._on_config)
        model.problems_changed.connect(lambda _p: self.form.mark(model.problem_map()))
        self._update_actions()

    # ---- layout -----------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.start_act = QAction("▶  Start", self, shortcut=QKeySequence("Ctrl+R"), triggered=lambda: self.start())
        self.pause_act = QAction("❚❚  Pause", self, triggered=self.controller.pause)
        self.resume_act = QAction("▶  Resume", self, triggered=self.controller.resume)
        self.stop_act = QAction("■  Stop", self, shortcut=QKeySequence("Ctrl+."), triggered=self.stop)
        self.start_act.setToolTip("Run teacher → distill → baseline → evaluate → export (Ctrl+R)")
        self.stop_act.setToolTip("Stop after this step; a checkpoint is written so the run can resume")
        self.controls = RunControls(self.start_act, self.pause_act, self.resume_act, self.stop_act)
        self.hint, self.settings_btn = self.controls.hint, self.controls.settings_btn
        self.form = ConfigForm(self.model.set, self.model.set_local_error)
        self.form.add_group("Run settings", ["device"] + section_keys("run"),
                            device={"choices": ["auto", "cpu", "cuda", "mps"], "editable_choices": True})
        self.form.hide()
        self.settings_btn.toggled.connect(self.form.setVisible)
        self.hint.linkActivated.connect(self.goto_problem)

        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.bar.setFormat("idle")
        self.status = QLabel("Press Start to train the teacher, distil the student and compare it with a baseline.")
        self.status.setObjectName("runStatus")
        self.status.setWordWrap(True)  # wraps instead of widening the page (the TOML dock needs the room)
        self.cache_chip = QLabel()
        self.cache_chip.setObjectName("chip")
        self.cache_chip.hide()
        srow = QHBoxLayout()
        srow.addWidget(self.status, 1)
        srow.addWidget(self.cache_chip)
        self.banner = Banner("error")
        self.banner.action.connect(self.show_error_details)

        self.plots = PlotPanel()
        self.plot_area = PlotArea(self.plots)
        self._plot_timer = QTimer(self)
        self._plot_timer.setSingleShot(True)
        self._plot_timer.setInterval(PLOT_REFRESH_MS)
        self._plot_timer.timeout.connect(self._refresh_live_view)
        self.history = RunHistory()
        self.log_pane = LogPane()
        self.live_log, self.past_log, self.logs = self.log_pane.live, self.log_pane.past, self.log_pane.stack
        self._log = self.log_pane.append
        self.side = QSplitter(Qt.Vertical)
        self.side.addWidget(self.history)
        self.side.addWidget(self.log_pane)
        self.split = QSplitter(Qt.Horizontal)
        self.split.addWidget(self.plot_area)
        self.split.addWidget(self.side)
        self.split.setStretchFactor(0, 3)
        self.split.setStretchFactor(1, 2)
        self._arrange(wide=True)
        scroll = QScrollArea()  # scrolls only when the window is shorter or narrower than plots and runs need
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setWidget(self.split)

        col = QVBoxLayout(self)
        col.setContentsMargins(12, 10, 12, 10)
        col.addWidget(self.controls)
        col.addWidget(self.form)
        col.addWidget(self.bar)
        col.addLayout(srow)
        col.addWidget(self.banner)
        col.addWidget(scroll, 1)

    def _arrange(self, wide: bool) -> None:
        """Wide: plots beside the runs and the log (stacked). Narrow: plots above runs | log, so the plots keep
        the width their controls need."""
        self.split.setOrientation(Qt.Horizontal if wide else Qt.Vertical)
        self.side.setOrientation(Qt.Vertical if wide else Qt.Horizontal)
        self.split.setSizes([760, 520] if wide else [620, 380])
        self.side.setMinimumHeight(0 if wide else 140)  # a short window scrolls to runs and log, never crushes them
        self.side.setSizes([260, 300] if wide else [500, 500])

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        need = self.plots.minimumSizeHint().width() + self.history.minimumSizeHint().width() + 60
        wide = event.size().width() >= need
        if wide != (self.split.orientation() == Qt.Horizontal):
            self._arrange(wide)

    def _on_config(self, _key: str = "") -> None:
        if self.model.cfg is not None:
            self.form.load(self.model.cfg)
            self.controls.set_device(self.model.cfg.device)

    # ---- control ----------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while a run's thread is alive."""
        return self.controller.is_active()

    def start(self, resume: RunInfo | None = None) -> bool:
        """Start a new run of the current config (or resume a stopped one); False when it cannot start."""
        project = self.model.project
        if self.running or project is None or project.damaged:
            return False
        self.model.save_now()
        if resume is None:
            if not self.model.valid:
                self._update_actions()
                return False
            cfg, out = self.model.cfg.copy(), project.new_run_dir()
            try:
                out.mkdir(parents=True)
            except OSError as e:
                self._on_failed(f"Cannot create the run folder '{out}' ({e.strerror or e}).", "")
                return False
        else:
            out = Path(resume.path)
            source = out / "sweep.toml" if (out / "sweep.toml").is_file() else out / "config.toml"
            try:
                cfg = config_mod.load(source)
            except config_mod.ConfigError as e:
                self._on_failed(str(e), "")
                return False
        self.live = LiveRun(cfg, out, resume=resume is not None)
        self.last_summary = self.last_error = None
        self.banner.clear()
        self.live_log.clear()
        self.cache_chip.hide()
        what = f"sweep of {self.live.sweep_total} runs" if self.live.sweep_total else "run"
        self._log(f"{'Resuming' if resume else 'Starting'} {what} {out.name} in {out}")
        self.controller.start(None if resume else cfg, out, resume=resume is not None)
        self.history.reload(project, live=(out, "running"))
        self.history.select_paths([out])
        self.probe.start()
        return True

    @property
    def live_series(self) -> RunSeries | None:
        """Curves of the run in progress (of the current run of a sweep)."""
        return self.live.series if self.live is not None else None

    def stop(self) -> None:
        """Ask the run to stop cleanly (checkpoint first)."""
        if self.running:
            self.controller.stop()
            self._log("Stop requested: finishing this step and writing a checkpoint…")

    def _on_state(self, state: str) -> None:
        if self.controller.run_dir is not None and state != "idle":
            self.history.reload(live=(self.controller.run_dir, state))
        if state == "paused":
            self.bar.setFormat(self.bar.format().split(" (")[0] + " (paused)")
        self._update_actions()

    def _update_actions(self) -> None:
        state = self.controller.state
        p = self.model.project
        can = p is not None and not p.damaged and self.model.valid and not self.running
        self.start_act.setEnabled(can)
        self.pause_act.setEnabled(state == "running")
        self.resume_act.setEnabled(state == "paused")
        self.stop_act.setEnabled(state in ("running", "paused"))
        problems = self.model.problems
        if p is not None and p.damaged:
            self.controls.set_hint("This project's project.toml is damaged; repair it in the TOML editor to run.")
        elif problems and not self.running:
            self.controls.set_hint(hint_html(*problems[0], more=len(problems) - 1))
        else:
            self.controls.set_hint("")
        self.start_act.setToolTip(self.hint.text() if problems else "Run the pipeline (Ctrl+R)")

    def _on_project(self, project) -> None:
        self.form.setEnabled(self.model.cfg is not None)
        if not self.running:
            self.live = None
            self.live_log.clear()
            self.banner.clear()
            self.bar.setValue(0)
            self.bar.setFormat("idle")
        self.history.reload(project, live=(self.controller.run_dir, self.controller.state) if self.running else None)
        runs = self.history.runs
        self.history.select_paths([runs[0].path] if runs else [])
        if not runs:
            self.plots.show_series([])
            self._sync_placeholder()
        self._update_actions()

    # ---- events -----------------------------------------------------------------------------------------
    def _on_events(self, batch: list) -> None:
        live = self.live
        showing_live = bool(self.plots.series) and self.plots.series[0] is live.series
        for text, stage, style in live.ingest(batch):
            self._log(text, stage, **style)
        if live.cache is not None:
            self.cache_chip.setText(f"teacher-output cache: {'on' if live.cache[0] else 'off'}")
            self.cache_chip.setToolTip(live.cache[1])
            self.cache_chip.show()
        if live.new_series:
            live.new_series = False
            if showing_live:
                self.plots.show_series([live.series])
                self._sync_placeholder()
            self._show_progress()
        elif not self._plot_timer.isActive():
            self._plot_timer.start()

    def _show_progress(self) -> None:
        value, text, detail = self.live.bar(self.controller.state == "paused")
        self.bar.setValue(value)
        self.bar.setFormat(text)
        self.status.setText(detail)

    def _flush_live_view(self) -> None:
        """Draw what is pending now and stop the redraw timer, so the final status set after this stays."""
        if self._plot_timer.isActive():
            self._plot_timer.stop()
            self._refresh_live_view()

    def _refresh_live_view(self) -> None:
        """Progress and live curves, brought up to date (called at most every PLOT_REFRESH_MS)."""
        if self.live is not None:
            self._show_progress()
            if self.plots.series and self.plots.series[0] is self.live.series:
                if self.plot_area.empty:  # the first curves: draw all three plots at once, then show them
                    self.plots.refresh()
                    self._sync_placeholder()
                else:
                    self.plots.refresh_staggered()

    def _on_finished(self, summary: dict) -> None:
        self._end_probe()
        self._flush_live_view()
        self.last_summary = summary
        status = summary.get("status")
        if status == "completed" and "rows" in summary:
            self.bar.setValue(1000)
            self.bar.setFormat("sweep completed")
            best = next((r for r in summary["rows"] if r.get("best")), {})
            point = ", ".join(f"{k} = {v:g}" for k, v in (best.get("point") or {}).items()) or "the config"
            mean = (best.get("student") or {}).get("mean")
            self.status.setText(f"Sweep done: {len(summary.get('runs', []))} runs; best: {point}"
                                + (f", student {mean:.2%} on average" if mean is not None else "")
                                + ". See Evaluate for the table.")
        elif status == "completed":
            self.bar.setValue(1000)
            self.bar.setFormat("completed")
            s, t = summary.get("student") or {}, summary.get("teacher") or {}
            self.status.setText(f"Done: student {s.get('accuracy', 0):.2%} vs teacher {t.get('accuracy', 0):.2%} "
                                "on the test split. See Evaluate and Export.")
        else:
            self.bar.setFormat(f"{status} — checkpoint saved; select the run and press Resume run to continue")
            self.status.setText("Stopped cleanly; the checkpoint holds model, optimizer, scheduler and RNG states.")
        self._log(f"Run {status}.", bold=True)
        self._after_run()
        self.run_finished.emit(summary)

    def _on_failed(self, message: str, details: str) -> None:
        self._end_probe()
        self._flush_live_view()
        self.last_error = (message, details)
        self.bar.setFormat("failed")
        self.status.setText("")
        self.banner.show_message(f"<b>Run failed:</b> {html.escape(message)}", "Details…" if details else None)
        if not self.live_log.toPlainText().rstrip().endswith(message):
            self._log(message, error=True)
        self._after_run()
        self.run_failed.emit(message, details)

    def show_error_details(self) -> QMessageBox | None:
        """A non-blocking dialog with the last error's message and details."""
        if not self.last_error:
            return None
        box = QMessageBox(QMessageBox.Critical, "Run failed", self.last_error[0], QMessageBox.Ok, self)
        box.setDetailedText(self.last_error[1] or "(no details)")
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.open()
        return box

    def _after_run(self) -> None:
        self.history.reload(live=None)
        self._series_cache.pop(str(self.controller.run_dir), None)
        self.history.select_paths([self.controller.run_dir] if self.controller.run_dir else [])
        self._update_actions()

    def _end_probe(self) -> None:
        if self.probe.active:
            self.probe.stop()
            self.last_stall = self.probe.stats()  # for demo mode and tests; not a message for users

    # ---- history / plots --------------------------------------------------------------------------------
    def _series_for(self, run: RunInfo) -> list[RunSeries]:
        if self.running and self.controller.run_dir and Path(run.path) == Path(self.controller.run_dir):
            return [self.live_series]
        if run.is_sweep:
            return [self._load_series(p, str(p.relative_to(run.path))) for p in run.sub_runs()]
        return [self._load_series(Path(run.path), run.name)]

    def _load_series(self, folder: Path, label: str) -> RunSeries:
        path = folder / "metrics.jsonl"
        mtime = path.stat().st_mtime if path.exists() else 0.0
        cached = self._series_cache.get(str(folder))
        if cached is None or cached[0] != mtime:
            cached = (mtime, RunSeries(label).extend(read_metrics(path)))
            self._series_cache[str(folder)] = cached
        return cached[1]

    def _on_history_selection(self, runs: list) -> None:
        self.plots.show_series([s for r in runs for s in self._series_for(r)])
        self._sync_placeholder()
        live = self.running and len(runs) == 1 and Path(runs[0].path) == Path(self.controller.run_dir)
        if len(runs) == 1 and not live and not (self.live_series and self.live_series.label == runs[0].name
                                                 and self.live_log.toPlainText()):
            self.log_pane.show_past(runs[0].path, runs[0].name)
        else:
            self.log_pane.show_live()
        self.runs_selected.emit(runs)

    def _sync_placeholder(self) -> None:
        """The plots when they have a curve, else a sentence saying why they are empty."""
        live = self.live is not None and bool(self.plots.series) and self.plots.series[0] is self.live.series
        text = (None if self.plots.curve_count() else
                "Waiting for the run's first metrics…" if live and self.running else
                "The selected run logged no metrics, so there are no curves to show." if self.plots.series else
                "Select a run in the list to see its curves." if self.history.runs else NO_RUN_TEXT)
        self.plot_area.show_empty(text)
