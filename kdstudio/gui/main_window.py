"""The main window: project list on the left, the project's pages in pipeline order on the right.

The window owns the run (RunController): the Train page shows it, the project list says "running", the Run menu
and its shortcuts control it, and closing asks first while it goes. Pages are built when first shown.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (QApplication, QDockWidget, QHBoxLayout, QLabel, QMainWindow, QMessageBox, QSplitter,
                               QTabWidget, QToolButton, QVBoxLayout, QWidget)

from ..core.store.projects import ProjectStore, RunInfo
from ..core.store.settings import Settings
from . import refguard, run_queue, theme, window_state
from .desktop import DesktopExtras
from .disk_prompt import ask_changed_on_disk
from .info import InfoHub
from .load_settings import SettingsLoader
from .trust_prompt import TrustPrompt
from .menus import build_menus
from .model import ConfigModel
from .page_slots import PAGES, Pages, PageSlot, page_factories, page_keys
from .prebuild import PagePrebuilder
from .pages.train import TrainPage
from .project_panel import DEMO_NAME, ProjectPanel
from .run_controller import RunController
from .toml_panel import TomlPanel
from .widgets import Banner, ElidedLabel, dot_icon

# When the window less an open TOML dock is narrower than this, the project list folds away by itself (Ctrl+B
# brings it back), so the pages keep the width they need; with room again it unfolds, unless the user chose meanwhile.
NARROW_WINDOW = 1000
TOML_WIDTH = 420


class MainWindow(QMainWindow):
    """KD Studio's window. `store` and `settings` default to the user's folders (or $KDSTUDIO_HOME)."""

    def __init__(self, store: ProjectStore | None = None, settings: Settings | None = None):
        super().__init__()
        refguard.top_up()
        self._guard = QTimer(self)  # keeps None/True/False alive under the PySide6 refcount bug (refguard.py)
        self._guard.timeout.connect(refguard.top_up)
        self._guard.start(2000)
        self.store = store or ProjectStore()
        self.settings = settings or Settings()
        self.model = ConfigModel(self)
        self.hub = InfoHub(self.model, self)
        self.trust_prompt = TrustPrompt(self, self.model, self.hub, self.settings.path)
        self.run = RunController(self.model, self)
        self._evaluate_run: RunInfo | None = None  # what the Evaluate page shows (once it is built)
        self._closing = False
        self._narrow = False       # the window less the TOML dock is narrower than NARROW_WINDOW
        self._auto_folded = False  # the project list was folded away by narrowing, not by the user
        self.setWindowTitle("KD Studio")
        self.resize(1440, 900)
        self.setMinimumSize(760, 540)

        self.panel = ProjectPanel(self.store)
        factories = page_factories(self.model, self.hub, self.run)
        self.slots = {name: PageSlot(factories[name]) for name in PAGES}
        for name, slot in self.slots.items():
            slot.built.connect(lambda page, n=name: self._on_page_built(n, page))
        self.pages = Pages(self.slots)
        # the other pages, built in idle ticks once the window is shown (app.main starts it: prebuild.py)
        self.prebuilder = PagePrebuilder(self.slots, lambda: self.tabs.currentWidget(), lambda: self.run.running,
                                         self)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        # When the tabs do not fit, scroll arrows appear and every tab keeps its whole name: shortened to "2 T…"
        # (beside an open TOML dock in a small window) no tab could be read.
        self.tabs.setElideMode(Qt.ElideNone)
        self.tabs.setUsesScrollButtons(True)
        self.tabs.tabBar().setIconSize(QSize(10, 10))
        for i, name in enumerate(PAGES):
            self.tabs.addTab(self.slots[name], f"{i + 1}  {name}")
            self.tabs.setTabToolTip(i, f"{name} (Ctrl+{i + 1})")  # the whole name, also when it is shortened

        self.title = ElidedLabel()
        self.title.setObjectName("projectTitle")
        self.title.set_full_text("No project")
        self.path_label = ElidedLabel(link=True)
        self.path_label.setObjectName("help")
        self.path_label.linkActivated.connect(lambda _l: self.panel.open_folder())
        self.damaged = Banner("error")
        self.damaged.action.connect(lambda: self.toml_dock.show())
        self.toml_btn = QToolButton()
        self.toml_btn.setText("Config as TOML")
        self.toml_btn.setCheckable(True)
        self.projects_btn = QToolButton()
        self.projects_btn.setObjectName("sideToggle")
        head = QHBoxLayout()
        head.addWidget(self.projects_btn)
        head.addWidget(self.title)
        head.addWidget(self.path_label, 1)
        head.addWidget(self.toml_btn)
        right = QWidget()
        rcol = QVBoxLayout(right)
        rcol.setContentsMargins(6, 8, 6, 0)
        rcol.addLayout(head)
        rcol.addWidget(self.damaged)
        rcol.addWidget(self.tabs, 1)
        self.split = QSplitter(Qt.Horizontal)
        self.split.addWidget(self.panel)
        self.split.addWidget(right)
        self.split.setStretchFactor(1, 1)
        self.split.setChildrenCollapsible(False)  # the project list folds with Ctrl+B / ☰, not by dragging
        self.split.setSizes([240, 1200])
        self.setCentralWidget(self.split)

        self.toml = TomlPanel(self.model)
        self.toml_dock = QDockWidget("Config (TOML)", self)
        self.toml_dock.setObjectName("tomlDock")
        self.toml_dock.setWidget(self.toml)
        self.addDockWidget(Qt.RightDockWidgetArea, self.toml_dock)
        self.toml_dock.hide()
        # Widened once the dock's new geometry is known. A child timer, not QTimer.singleShot: closing hides the
        # dock, and a pending singleShot then called (or kept alive) a window that was being deleted.
        self._dock_fit = QTimer(self, singleShot=True, interval=0, timeout=self._on_toml_dock)
        self.toml_dock.visibilityChanged.connect(lambda _shown: self._dock_fit.start())

        self.torch_label = QLabel("Loading PyTorch…")
        self.save_label = QLabel("")
        self.statusBar().addPermanentWidget(self.save_label)
        self.statusBar().addPermanentWidget(self.torch_label)
        self.desktop = DesktopExtras(self)  # title progress, run-end notice, Space, colours, GPU label
        self.loader = SettingsLoader(self.model, self.statusBar(), self)  # a run's settings back, with undo
        self.queue_ui = run_queue.install(self, self.model, self.run)  # runs waiting for the one in progress
        self.queue = self.queue_ui.queue
        self.queue.may_start = lambda: not self._closing  # a closing window starts no queued run
        build_menus(self)
        self._connect()

    # ---- construction -----------------------------------------------------------------------------------
    @property
    def train(self) -> TrainPage:
        """The Train page (built now if it was not yet)."""
        return self.pages["Train"]

    def _connect(self) -> None:
        self.panel.opened.connect(self.model.set_project)
        self.panel.error.connect(lambda msg: QMessageBox.warning(self, "KD Studio", msg))
        self.panel.removed.connect(lambda name: (self.settings.forget(name), self._fill_recent()))
        self.panel.renamed.connect(lambda old, new: self.settings.forget(old))
        self.model.project_changed.connect(self._on_project)
        self.model.problems_changed.connect(self._mark_tabs)
        self.model.saved.connect(lambda msg: self.save_label.setText(msg))
        self.model.changed_on_disk.connect(lambda: ask_changed_on_disk(self, self.model))
        self.model.save_failed.connect(lambda msg: self.save_label.setText(theme.span(msg, "error")))
        self.hub.catalog_ready.connect(lambda c: self.torch_label.setText(f"PyTorch {c['torch'].split('+')[0]} · "
                                                                          f"{c['device']}"))
        self.hub.info_failed.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.run.finished.connect(self._on_run_ended)
        self.run.failed.connect(lambda m, d: self._on_run_ended({}))
        self.run.state_changed.connect(self._on_run_state)
        self.queue.changed.connect(self._update_busy_projects)
        self._update_busy_projects()  # the last session's queued runs write into their projects too

    def _on_page_built(self, name: str, page) -> None:
        if name == "Train":
            page.goto_problem.connect(self.goto_key)
            page.runs_selected.connect(self._on_runs_selected)
            page.history.load_requested.connect(self.loader.load)
            page.history.renamed.connect(lambda _path: self._on_run_renamed())
        elif name == "Evaluate":
            page.seeds_started.connect(lambda: self.show_page("Train"))  # "Run 3 seeds": watch it run
            page.seeds_queued.connect(self._queue_seeds)  # "Queue 3 seeds" during a run
            page.show_run(self._evaluate_run)

    # ---- projects ---------------------------------------------------------------------------------------
    def open_initial(self, demo: bool = False) -> None:
        """Open the demo project (creating it), else the last project, else the first, else offer the demo."""
        if demo:
            project = self.store.get(DEMO_NAME)
            if project is None or project.damaged:
                self.panel.new_project(self.store.unique_name(DEMO_NAME), template=DEMO_NAME)
            else:
                self.panel.open(project.name)
            return
        names = [p.name for p in self.store.list()]
        last = self.settings.get("last_project")
        if last in names:
            self.panel.open(last)
        elif names:
            self.panel.open(names[0])
        else:
            self.panel.new_project(DEMO_NAME, template=DEMO_NAME)

    def _on_project(self, project) -> None:
        self.panel.reload(project.name if project else None)
        if project is None:
            self.title.set_full_text("No project")
            self.path_label.set_full_text("")
            self.damaged.clear()
        else:
            self.title.set_full_text(project.name)
            self.path_label.set_full_text(str(project.path))
            self.settings.touch_recent(project.name)
            self.settings.save()
            if project.damaged:
                self.damaged.show_message(f"<b>project.toml is damaged</b> and is not overwritten: "
                                          f"{project.error}", "Repair in TOML editor")
            else:
                self.damaged.clear()
        self.setWindowTitle(f"{project.name} — KD Studio" if project else "KD Studio")
        self._fill_recent()
        self._show_latest_results()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for name in self.settings.recent:
            self.recent_menu.addAction(name, lambda n=name: self.panel.open(n))
        self.recent_menu.setEnabled(bool(self.settings.recent))

    def _show_latest_results(self) -> None:
        p = self.model.project
        runs = p.runs() if p is not None and not p.damaged else []
        done = [r for r in runs if r.status == "completed"]
        self._show_on_evaluate(done[0] if done else None)
        if (export := self.pages.built("Export")) is not None:
            export.reload_runs()

    def _show_on_evaluate(self, run: RunInfo | None) -> None:
        """The run the Evaluate page shows, now or when it is first opened."""
        self._evaluate_run = run
        if (page := self.pages.built("Evaluate")) is not None:
            page.show_run(run)

    # ---- pages ------------------------------------------------------------------------------------------
    def show_page(self, name: str) -> None:
        """Switch to a page by name (building it, if this is its first time)."""
        self.slots[name].ensure()
        self.tabs.setCurrentWidget(self.slots[name])

    def current_page(self) -> QWidget:
        """The page on screen."""
        return self.tabs.currentWidget().ensure()

    def goto_key(self, key: str) -> None:
        """Show the page that edits `key` and focus that field."""
        for name in PAGES:
            if key in page_keys(name):
                self.show_page(name)
                page = self.pages[name]
                if hasattr(page, "focus_key"):
                    page.focus_key(key)
                return
        self.toml_dock.show()

    def _mark_tabs(self, problems: list) -> None:
        bad = {k for k, _ in problems}
        for i, name in enumerate(PAGES):
            hit = bool(page_keys(name) & bad)
            self.tabs.setTabIcon(i, dot_icon(theme.color("error"), 10) if hit else dot_icon("#00000000", 10))
        self.statusBar().showMessage(f"{len(problems)} problem(s) in the config" if problems else "", 0)

    def _on_runs_selected(self, runs: list) -> None:
        if len(runs) == 1 and runs[0].summary:
            self._show_on_evaluate(runs[0])

    def _queue_seeds(self, cfg) -> None:
        """Queue the Evaluate page's three-seed run in the open project (whose run it shows)."""
        if self.model.project is not None and not self.model.project.damaged:
            self.queue.add(self.model.project, cfg)

    def _on_run_renamed(self) -> None:
        """A run got a new name in the runs table: the Evaluate header and the Export picker say it too."""
        if (page := self.pages.built("Evaluate")) is not None:
            page.show_heading()
        if (export := self.pages.built("Export")) is not None:
            export.reload_runs()

    def _on_run_ended(self, summary: dict) -> None:
        self.panel.reload()
        run_dir = self.run.run_dir
        runs = self.model.project.runs() if self.model.project else []
        mine = [r for r in runs if run_dir and r.path == run_dir]
        if mine and summary.get("status") == "completed":
            self._show_on_evaluate(mine[0])
        if (export := self.pages.built("Export")) is not None:
            export.reload_runs(select=run_dir if mine else None)  # another project's run: the choice stays
        self._refresh_model_pages()
        if self._closing:
            QTimer.singleShot(0, self, self.close)

    def _refresh_model_pages(self) -> None:
        """The Teacher and Student pages say which run trained their model, read when a page is shown: the one
        on screen when a run ends gets the same show event now, not only at the next page switch."""
        for name in ("Teacher", "Student"):
            page = self.pages.built(name)
            if page is not None and page.isVisible():
                QApplication.sendEvent(page, QShowEvent())

    def _on_run_state(self, state: str) -> None:
        self.panel.set_live_run(self.run.run_dir, state)  # "1 run · running" in the project list
        self._update_busy_projects()

    def _update_busy_projects(self) -> None:
        """Other projects can be opened and edited during a run; the run's project and those a queued run will
        write into are not renamed or deleted meanwhile."""
        busy = self.queue.projects()
        if self.run.running and self.run.project is not None:
            busy.add(self.run.project.name)
        self.panel.set_busy(busy)

    # ---- project list and TOML dock: fold and widen to the window's width --------------------------------
    def set_project_list_visible(self, shown: bool, chosen: bool = False) -> None:
        """Show or hide the project list (the splitter gives it back its width). A `chosen` (user's) setting
        holds until the window next crosses NARROW_WINDOW."""
        self._auto_folded = self._auto_folded and not chosen
        self.panel.setVisible(shown)
        self.projects_act.setChecked(shown)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit_width()
        d = self.toml_dock
        if d.isVisible() and not d.isFloating() and d.width() < 300:
            self._dock_fit.start()  # a shrinking window squeezed the dock: widen it again

    def _fit_width(self, dock: int | None = None) -> None:
        """Fold or unfold the project list when the room for it and the pages crosses NARROW_WINDOW."""
        docked = self.toml_dock.isVisible() and not self.toml_dock.isFloating()
        narrow = self.width() - (dock if dock is not None else self.toml_dock.width() if docked else 0) < NARROW_WINDOW
        if narrow == self._narrow:
            return
        self._narrow = narrow
        if narrow and not self.panel.isHidden():
            self._auto_folded = True
            self.set_project_list_visible(False)
        elif not narrow and self._auto_folded:
            self._auto_folded = False
            self.set_project_list_visible(True)

    def _on_toml_dock(self) -> None:
        """An opened TOML dock narrower than is useful gets TOML_WIDTH (half of a narrow window)."""
        d = self.toml_dock
        width = min(TOML_WIDTH, self.width() // 2) if d.isVisible() and not d.isFloating() and d.width() < 300 else None
        self._fit_width(dock=width)  # first: the project list may have to fold to make room
        if width:  # never ask for more than the pages leave: the dock would get its minimum instead
            room = self.width() - self.centralWidget().minimumSizeHint().width() - 8
            self.resizeDocks([d], [min(width, room)], Qt.Horizontal)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Ask before closing during a run; then stop it cleanly (checkpoint) and close when it has ended."""
        if self.run.running:
            if not self._closing:
                answer = QMessageBox.question(
                    self, "A run is in progress", "Stop the run and quit? A checkpoint is written first, so the run "
                    "can be resumed later." + self.queue.kept_note(),
                    QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
                if answer != QMessageBox.Yes:
                    event.ignore()
                    return
                self._closing = True
                self.queue.hold()  # nothing queued starts while the window waits for the clean stop
                self.run.stop()
                self.statusBar().showMessage("Stopping the run cleanly before quitting…")
            event.ignore()
            return
        self.model.save_now()
        self.model.release()  # the project's lock: another window may edit it now
        window_state.save(self)
        event.accept()
