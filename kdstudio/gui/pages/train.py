"""Train page: start / pause / resume / stop, progress with ETA, live plots, log, run history.

The page shows the window's RunController (run_controller.py): it owns no run. It may be built after a run has
started or ended (pages are built when first shown), so it first draws what the controller already holds.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QMessageBox, QProgressBar, QScrollArea, QSplitter,
                               QVBoxLayout, QWidget)
from superqt.utils import qthrottled

from ...core.store.files import RunDir, read_metrics
from ...core.store.projects import RunInfo
from ...core.store.run_labels import display_name
from ..forms import ConfigForm
from ..model import ConfigModel
from ..plots import PlotPanel
from ..run_controller import LogLine, RunController
from ..series import RunSeries
from ..widgets import Banner
from .base import section_keys
from .history import RunHistory
from .train_parts import NO_RUN_TEXT, LogPane, PlotArea, RunControls

# The live view (curves, progress bar, status line) redraws at most this often: each change repaints part of the
# window, and redrawing on every 50 ms event batch kept the window repainting.
PLOT_REFRESH_MS = 250


def run_label(run: RunInfo) -> str:
    """The name a run has in the plots' legends and the log's title: the name the user gave it (run.json), else
    its folder name (a timestamp)."""
    return display_name(run.path, run.name)


class TrainPage(QWidget):
    """Shows the window's run live (progress, curves, log) and the project's run history."""

    runs_selected = Signal(list)     # [RunInfo] selected in the history
    goto_problem = Signal(str)       # dotted key of the first problem (the Start hint's link)

    def __init__(self, model: ConfigModel, controller: RunController, hub=None, parent=None):
        super().__init__(parent)
        self.model = model
        self.controller = controller
        self._series_cache: dict[str, tuple[float, RunSeries]] = {}
        self._plots_stale = False  # the live curves have news the hidden page has not drawn
        self._build()
        controller.started.connect(self._on_started)
        controller.logged.connect(self._on_logged)
        controller.events.connect(self._on_events)
        controller.finished.connect(self._on_finished)
        controller.failed.connect(self._on_failed)
        controller.state_changed.connect(self._on_state)
        self.history.selection_changed.connect(self._on_history_selection)
        self.history.resume_requested.connect(lambda run: controller.start(resume=run))
        model.problems_changed.connect(lambda _p: self._update_hint())
        model.project_changed.connect(self._on_project)
        model.config_changed.connect(self._on_config)
        model.problems_changed.connect(lambda _p: self.form.mark(model.problem_map()))
        if hub is not None:  # the CUDA devices are known once torch has loaded (the catalogue)
            hub.catalog_ready.connect(lambda _c: self.controls.refresh_gpus())
        self.controls.processes_changed.connect(lambda n: setattr(controller, "processes", n))
        self._catch_up()

    # ---- layout -----------------------------------------------------------------------------------------
    def _build(self) -> None:
        c = self.controller
        self.start_act, self.pause_act, self.resume_act, self.stop_act = \
            c.start_act, c.pause_act, c.resume_act, c.stop_act  # the window's actions, on this page's buttons
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
        self.reuse_chip = QLabel()  # "teacher: reused from run 20261201-200111"
        self.reuse_chip.setObjectName("chip")
        self.reuse_chip.hide()
        srow = QHBoxLayout()
        srow.addWidget(self.status, 1)
        srow.addWidget(self.reuse_chip)
        srow.addWidget(self.cache_chip)
        self.banner = Banner("error")
        self.banner.action.connect(self.show_error_details)

        self.plots = PlotPanel()
        self.plot_area = PlotArea(self.plots)
        self._redraw = qthrottled(self._refresh_live_view, PLOT_REFRESH_MS, leading=False, parent=self)
        self.history = RunHistory()
        self.log_pane = LogPane()
        self.live_log, self.past_log, self.logs = self.log_pane.live, self.log_pane.past, self.log_pane.stack
        self._log = self.log_pane.append
        # the runs table spans the page below the plots: its metrics and the settings that differ need the width
        self.top = QSplitter(Qt.Horizontal)
        self.top.addWidget(self.plot_area)
        self.side = QSplitter(Qt.Horizontal)
        self.side.addWidget(self.history)
        self.split = QSplitter(Qt.Vertical)
        self.split.addWidget(self.top)
        self.split.addWidget(self.side)
        self.split.setChildrenCollapsible(False)
        self._wide: bool | None = None
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
        """Wide: plots beside the log, the runs below at full width. Narrow: plots at full width (their controls
        need it), the runs beside the log below them."""
        if wide == self._wide:
            return
        self._wide = wide
        (self.top if wide else self.side).addWidget(self.log_pane)
        self.top.setSizes([700, 300])
        self.side.setSizes([1000] if wide else [500, 300])
        self.split.setSizes([520, 300] if wide else [420, 300])
        self.side.setMinimumHeight(140)  # a short window scrolls to runs and log, never crushes them

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        need = self.plots.minimumSizeHint().width() + self.log_pane.minimumSizeHint().width() + 60
        self._arrange(event.size().width() >= need)

    def _on_config(self, _key: str = "") -> None:
        if self.model.cfg is not None:
            self.form.load(self.model.cfg)
            self.controls.set_device(self.model.cfg.device)

    def _catch_up(self) -> None:
        """Draw what the model and the controller hold already: this page may be built after a project was
        opened, a run started, or a run ended."""
        self._on_config()
        self.form.mark(self.model.problem_map())
        self.controls.refresh_gpus()
        c = self.controller
        for line in c.log_lines:
            self._on_logged(line)
        if c.live is not None:
            self._show_progress()
            if c.last_summary is not None:
                self._show_outcome(c.last_summary)
        if c.last_error is not None:
            self._show_failure(*c.last_error)
        self._show_project(self.model.project)  # after the log: selecting the run just shown keeps it on screen

    # ---- the run's state ----------------------------------------------------------------------------------
    @property
    def live_series(self) -> RunSeries | None:
        """Curves of the run in progress (of the current run of a sweep)."""
        return self.controller.live.series if self.controller.live is not None else None

    def _on_started(self, out: Path) -> None:
        self.banner.clear()
        self.live_log.clear()
        self.cache_chip.hide()
        self.reuse_chip.hide()
        if self._shows_run_project():
            self.history.reload(self.model.project, live=(out, "running"))
            self.history.select_paths([out])
        else:  # a queued run of another project started: this project's runs stay on screen
            self.history.reload(live=(out, "running"))

    def _shows_run_project(self) -> bool:
        """True when the project on screen is the one the run (going, or last) belongs to."""
        shown, ran = self.model.project, self.controller.project
        return shown is not None and ran is not None and shown.path == ran.path

    def _named(self, text: str) -> str:
        """The bar's text, after the run's project name when another project is on screen."""
        ran = self.controller.project
        return f"{ran.name}: {text}" if ran is not None and not self._shows_run_project() else text

    def _on_logged(self, line: LogLine) -> None:
        self._log(line.text, line.stage, at=line.at, **line.style)

    def _on_state(self, state: str) -> None:
        live = self.controller.live
        if live is not None and state in ("paused", "running"):
            live.progress.hold()  # a pause is not training time: the ETA's speed leaves it out
        if self.controller.run_dir is not None and state != "idle":
            self.history.reload(live=(self.controller.run_dir, state))
        if state == "paused":
            self.bar.setFormat(self.bar.format().split(" (")[0] + " (paused)")
        self.controls.gpus.setEnabled(state == "idle")  # a run's processes are fixed when it starts
        self._update_hint()

    def _update_hint(self) -> None:
        self.controls.set_hint(self.controller.blocker())
        self.controls.set_warning(" ".join(self.model.warnings) if not self.controller.running else "")

    def _on_project(self, project) -> None:
        if not self.controller.running:  # another project: the ended run's view goes
            self.live_log.clear()
            self.banner.clear()
            self.bar.setValue(0)
            self.bar.setFormat("idle")
        elif self.controller.live is not None:
            self._show_progress()  # named after its project when another project is shown
        self._show_project(project)

    def _show_project(self, project) -> None:
        """The project's runs (the newest selected) and whether it can run."""
        self.form.setEnabled(self.model.cfg is not None)
        c = self.controller
        self.history.reload(project, live=(c.run_dir, c.state) if c.running else None)
        runs = self.history.runs
        self.history.select_paths([runs[0].path] if runs else [])
        if not runs:
            self.plots.show_series([])
            self._sync_placeholder()
        self._update_hint()

    # ---- events -----------------------------------------------------------------------------------------
    def _on_events(self, _batch: list) -> None:
        live = self.controller.live  # the controller has applied the batch to it already
        if live.cache is not None:
            self.cache_chip.setText(f"teacher-output cache: {'on' if live.cache[0] else 'off'}")
            self.cache_chip.setToolTip(live.cache[1])
            self.cache_chip.show()
        self.reuse_chip.setVisible(bool(live.reused))
        if live.reused:
            self.reuse_chip.setText(" · ".join(f"{stage}: reused from run {run}"
                                               for stage, run in live.reused.items()))
            self.reuse_chip.setToolTip("Not trained again: a stored model with the same settings, data and seed was "
                                       "reused (teacher.reuse on the Teacher page).")
        if live.new_series:  # a sweep's next run: fresh curves, shown at once when the sweep is on screen
            live.new_series = False
            if self._showing_live():
                self.plots.show_series([live.series])
                self._sync_placeholder()
            self._show_progress()
        else:
            self._redraw()

    def _showing_live(self) -> bool:
        """True when the history's selection is the run in progress alone (the plots then follow it)."""
        sel, run_dir = self.history.selected(), self.controller.run_dir
        return self.controller.running and len(sel) == 1 and run_dir is not None and Path(sel[0].path) == run_dir

    def _show_progress(self) -> None:
        value, text, detail = self.controller.live.bar(self.controller.state == "paused")
        self.bar.setValue(value)
        self.bar.setFormat(self._named(text))
        self.status.setText(detail)

    def _flush_live_view(self) -> None:
        """Draw what is pending now and stop the redraw timer, so the final status set after this stays."""
        self._redraw.flush(restart_timer=False)

    def _refresh_live_view(self) -> None:
        """Progress and live curves, brought up to date (called at most every PLOT_REFRESH_MS); the curves only
        while the page is on screen (a hidden plot's update costs the window as much as a shown one's)."""
        if self.controller.live is not None:
            self._show_progress()
            if not self.isVisible():
                self._plots_stale = True
            elif self.plots.series and self.plots.series[0] is self.live_series:
                if self.plot_area.empty:  # the first curves: draw all three plots at once, then show them
                    self.plots.refresh()
                    self._sync_placeholder()
                else:
                    self.plots.refresh_staggered()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Back on screen during a run: the curves catch up (throttled, so the tab switch itself stays quick)."""
        super().showEvent(event)
        if self._plots_stale:
            self._plots_stale = False
            self._redraw()

    def _on_finished(self, summary: dict) -> None:
        self._flush_live_view()
        self._show_outcome(summary)
        self._after_run()

    def _show_outcome(self, summary: dict) -> None:
        """The bar and the status line for a run that ended (completed or stopped)."""
        status = summary.get("status")
        if status == "completed" and "rows" in summary:
            self.bar.setValue(1000)
            self.bar.setFormat(self._named("sweep completed"))
            best = next((r for r in summary["rows"] if r.get("best")), {})
            point = ", ".join(f"{k} = {v:g}" for k, v in (best.get("point") or {}).items()) or "the config"
            mean = (best.get("student") or {}).get("mean")
            self.status.setText(f"Sweep done: {len(summary.get('runs', []))} runs; best: {point}"
                                + (f", student {mean:.2%} on average" if mean is not None else "")
                                + ". See Evaluate for the table.")
        elif status == "completed":
            self.bar.setValue(1000)
            self.bar.setFormat(self._named("completed"))
            s, t = summary.get("student") or {}, summary.get("teacher") or {}
            self.status.setText(f"Done: student {s.get('accuracy', 0):.2%} vs teacher {t.get('accuracy', 0):.2%} "
                                "on the test split. See Evaluate and Export.")
        else:
            self.bar.setFormat(self._named(f"{status} — checkpoint saved; select the run and press Resume run to "
                                           "continue"))
            self.status.setText("Stopped cleanly; the checkpoint holds model, optimizer, scheduler and RNG states.")

    def _on_failed(self, message: str, details: str) -> None:
        self._flush_live_view()
        self._show_failure(message, details)
        self._after_run()

    def _show_failure(self, message: str, details: str) -> None:
        self.bar.setFormat(self._named("failed"))
        self.status.setText("")
        self.banner.show_message(f"<b>Run failed:</b> {html.escape(message)}", "Details…" if details else None)

    def show_error_details(self) -> QMessageBox | None:
        """A non-blocking dialog with the last error's message and details."""
        error = self.controller.last_error
        if not error:
            return None
        box = QMessageBox(QMessageBox.Critical, "Run failed", error[0], QMessageBox.Ok, self)
        box.setDetailedText(error[1] or "(no details)")
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.open()
        return box

    def _after_run(self) -> None:
        self.history.reload(live=None)
        self._series_cache.pop(str(self.controller.run_dir), None)
        if self._shows_run_project():  # a queued run of another project leaves this project's selection alone
            self.history.select_paths([self.controller.run_dir] if self.controller.run_dir else [])
        self._update_hint()

    # ---- history / plots --------------------------------------------------------------------------------
    def _series_for(self, run: RunInfo, prefix: bool) -> list[tuple[RunSeries, str]]:
        """A run's curves with the name each has in an overlay; a sweep's members are named by their point and
        seed (after the sweep's own name when `prefix`, i.e. other runs are shown beside it)."""
        label = run_label(run)
        if self.controller.running and self.controller.run_dir and Path(run.path) == Path(self.controller.run_dir):
            return [(self.live_series, label)]
        if run.is_sweep:
            return [(self._load_series(p, str(p.relative_to(run.path))),
                     f"{label}/{p.relative_to(run.path)}" if prefix else str(p.relative_to(run.path)))
                    for p in run.sub_runs()]
        return [(self._load_series(Path(run.path), run.name), label)]

    def _load_series(self, folder: Path, label: str) -> RunSeries:
        path = RunDir(folder).metrics
        mtime = path.stat().st_mtime if path.exists() else 0.0
        cached = self._series_cache.get(str(folder))
        if cached is None or cached[0] != mtime:
            cached = (mtime, RunSeries(label).extend(read_metrics(path)))
            self._series_cache[str(folder)] = cached
        return cached[1]

    def _on_history_selection(self, runs: list) -> None:
        shown = [pair for r in runs for pair in self._series_for(r, prefix=len(runs) > 1)]
        self.plots.show_series([s for s, _ in shown], [label for _, label in shown])
        self._sync_placeholder()
        live = self.controller.running and len(runs) == 1 and Path(runs[0].path) == Path(self.controller.run_dir)
        if len(runs) == 1 and not live and not (self.live_series and self.live_series.label == runs[0].name
                                                 and self.live_log.toPlainText()):
            members = runs[0].sub_runs() if runs[0].is_sweep else None  # a sweep has no log of its own
            self.log_pane.show_past(runs[0].path, run_label(runs[0]), members)
        else:
            self.log_pane.show_live()
        self.runs_selected.emit(runs)

    def _sync_placeholder(self) -> None:
        """The plots when they have a curve, else a sentence saying why they are empty."""
        live = self.live_series is not None and bool(self.plots.series) and self.plots.series[0] is self.live_series
        text = (None if self.plots.curve_count() else
                "Waiting for the run's first metrics…" if live and self.controller.running else
                "The selected run logged no metrics, so there are no curves to show." if self.plots.series else
                "Select a run in the list to see its curves." if self.history.runs else NO_RUN_TEXT)
        self.plot_area.show_empty(text)
