"""The run queue: runs that wait for the one in progress, each a snapshot of a project's config taken when it was
queued; when a run ends (completed, stopped or failed) the next one starts by itself.

Start reads "Queue" while a run goes (run_controller.py); pressing it saves the open project and queues a copy of
its config, so later edits do not change what runs. Every change is written to queue.json (core/store/queue_file.py),
so the queue outlives a restart: the next window shows it held, and nothing starts by itself until "Resume queue".
Stop asks whether to hold the queue too. RunQueuePanel shows it in a dock: project, what the config runs, position.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (QDockWidget, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMainWindow,
                               QMessageBox, QPushButton, QToolButton, QVBoxLayout, QWidget)

from ..core.config import Config
from ..core.config import diff as diff_mod
from ..core.errors import KDError
from ..core.store import queue_file
from ..core.store.projects import Project
from .model import ConfigModel
from .run_controller import RunController

MAX_KEYS = 3  # differing settings named on a queued run's line (all of them in its tooltip)
DESCRIBED = {"teacher.source", "teacher.arch", "student.arch", "distill.method", "distill.epochs", "run.seeds",
             "run.sweep"}  # what QueuedRun.describe says already


@dataclass
class QueuedRun:
    """One waiting run: the project it runs in and the config it runs (a copy taken when it was queued)."""

    project: Project
    cfg: Config
    queued_at: float = field(default_factory=time.time)

    def flat(self) -> dict:
        """The config as dotted keys (for what differs between queued runs)."""
        return diff_mod.flatten(self.cfg.to_dict())

    def describe(self) -> str:
        """What the run trains, in one line: "Tiny · cnn → mlp · kd · distill 1 epoch · seeds 0, 1"."""
        c = self.cfg
        teacher = c.teacher.arch if c.teacher.source == "train" else f"{c.teacher.source} teacher"
        epochs = f"distill {c.distill.epochs} epoch{'s' if c.distill.epochs != 1 else ''}"
        parts = [self.project.name, f"{teacher} → {c.student.arch}", c.distill.method, epochs]
        if len(c.run.seeds) > 1 or c.run.sweep:
            parts.append("sweep" if c.run.sweep else "seeds " + ", ".join(str(s) for s in c.run.seeds))
        return " · ".join(parts)


class RunQueue(QObject):
    """The window's waiting runs; starts the next through the RunController when a run ends."""

    changed = Signal()
    added = Signal(object)  # the QueuedRun just queued

    def __init__(self, model: ConfigModel, controller: RunController, parent=None, path=None):
        super().__init__(parent)
        self.model, self.controller = model, controller
        self.path = path or queue_file.queue_path()  # queue.json: written on every change
        self.items: list[QueuedRun] = []
        self.held = False  # Stop asked to stop the queue too: nothing starts until resume()
        self.restored = False  # the held runs came from the last session (not from a Stop)
        self.notes: list[str] = []  # what could not be restored, one sentence each
        self._save_failed = False
        self.may_start: Callable[[], bool] = lambda: True  # the window says False while it closes
        controller.queue_requested.connect(self.add_current)
        controller.finished.connect(lambda _summary: self._schedule())  # completed or stopped
        controller.failed.connect(lambda _message, _details: self._schedule())
        controller.confirm_stop = self.confirm_stop
        # one pending start however many ends and failures ask for it: the next is started once
        self._next = QTimer(self, singleShot=True, interval=0, timeout=self._start_next)
        self.changed.connect(self._save)

    # ---- on disk ------------------------------------------------------------------------------------------
    def restore(self) -> None:
        """Take the queue the last session left: held (nothing starts by itself), what cannot run said."""
        saved, self.notes = queue_file.read_queue(self.path)
        for line in self.notes:
            self.controller.log(line, error=True)
        if saved:
            self.items = [QueuedRun(s.project, s.cfg, s.queued_at) for s in saved]
            self.held = self.restored = True
            self.controller.log(f"{len(saved)} queued run{'s' if len(saved) != 1 else ''} from the last session, "
                                "held: Resume queue starts them.")
        if saved or self.notes:
            self.changed.emit()  # also writes back the queue without what was dropped

    def _save(self) -> None:
        """Write the queue; a failure (a full disk) is said once, and the queue goes on in memory."""
        try:
            queue_file.write_queue([(i.project, i.cfg, i.queued_at) for i in self.items], self.path)
            self._save_failed = False
        except (KDError, OSError) as e:
            if not self._save_failed:
                self.controller.log(f"The run queue is not saved: {e}", error=True)
            self._save_failed = True

    def add_current(self) -> QueuedRun | None:
        """Queue the open project's config as it is now (saved first); None when it cannot run as it is."""
        p = self.model.project
        if p is None or p.damaged or not self.model.valid or self.model.cfg is None:
            return None
        self.model.save_now()
        return self.add(p, self.model.cfg)

    def add(self, project: Project, cfg: Config) -> QueuedRun:
        """Queue a copy of `cfg` to run in `project` (Start's "Queue", "Queue 3 seeds" on the Evaluate page)."""
        item = QueuedRun(project, cfg.copy())
        self.items.append(item)
        self.controller.log(f"Queued a run of {project.name} (position {len(self.items)}): {item.describe()}.")
        self.changed.emit()
        self.added.emit(item)
        if not self.controller.running:  # the run ended between the click and now
            self._schedule()
        return item

    def remove(self, index: int) -> None:
        """Drop the waiting run at `index`."""
        if 0 <= index < len(self.items):
            del self.items[index]
            self.changed.emit()

    def move_up(self, index: int) -> None:
        """Swap the waiting run at `index` with the one before it."""
        if 0 < index < len(self.items):
            self.items[index - 1], self.items[index] = self.items[index], self.items[index - 1]
            self.changed.emit()

    def hold(self) -> None:
        """Start nothing more until resume() (the queued runs stay)."""
        if not self.held:
            self.held = True
            self.changed.emit()

    def resume(self) -> None:
        """Let the queue go on; the next run starts now if none is going."""
        if self.held:
            self.held = self.restored = False
            self.notes = []
            self.changed.emit()
        self._schedule()

    def projects(self) -> set[str]:
        """Names of the projects a queued run will write into (they are not renamed or deleted meanwhile)."""
        return {item.project.name for item in self.items}

    def confirm_stop(self) -> bool:
        """Before Stop: with runs waiting, ask whether to hold the queue too; False when the user cancels."""
        if not self.items or self.held:
            return True
        n = len(self.items)
        answer = QMessageBox.question(
            self.parent() if isinstance(self.parent(), QWidget) else None, "Stop the queue too?",
            f"{n} queued run{'s wait' if n != 1 else ' waits'} after this one. Yes: stop this run and hold the "
            "queue (Resume queue starts it again). No: stop this run and start the next one.",
            QMessageBox.Yes | QMessageBox.No | QMessageBox.Cancel, QMessageBox.Yes)
        if answer == QMessageBox.Cancel:
            return False
        if answer == QMessageBox.Yes:
            self.hold()
        return True

    def kept_note(self) -> str:
        """What quitting does to the queue, as a sentence after the quit question ("" when nothing waits)."""
        n = len(self.items)
        return (f" The {n} queued run{'s are' if n != 1 else ' is'} kept: held until Resume queue when KD Studio "
                "starts again." if n else "")

    # ---- starting the next ------------------------------------------------------------------------------
    def _schedule(self) -> None:
        self._next.start()  # after every other listener of the ended run (the Train page, the window) has seen it

    def _start_next(self) -> None:
        if self.held or not self.items or self.controller.running or not self.may_start():
            return
        item = self.items.pop(0)
        self.changed.emit()
        if not item.project.file.is_file():  # deleted or moved outside the window meanwhile
            self.controller.log(f"Skipped a queued run: project '{item.project.name}' no longer exists.", error=True)
            self._schedule()
            return
        if not self.controller.start(config=item.cfg, project=item.project):
            self._schedule()  # it could not start (its failure, if any, is in the log): the next one


def differs_all(flat: dict, keys: list[str]) -> list[str]:
    """ "key = value" for each of `keys` in a flattened config."""
    return [f"{k} = {diff_mod.show(flat.get(k, diff_mod.MISSING))}" for k in keys]


class RunQueuePanel(QWidget):
    """The queue in a list (position, project, what it runs) with Move up, Remove and Resume queue; a queued
    run's project opens on a double-click."""

    project_requested = Signal(str)  # the name of a queued run's project, double-clicked

    def __init__(self, queue: RunQueue, parent=None):
        super().__init__(parent)
        self.queue = queue
        self.head = QLabel()
        self.head.setObjectName("help")
        self.head.setWordWrap(True)
        self.list = QListWidget()
        self.list.setObjectName("runQueue")
        # a few rows: the dock stays a strip under the pages, and scrolls for a longer queue
        self.list.setMaximumHeight(4 * self.list.fontMetrics().lineSpacing() + 12)
        self.up_btn = QPushButton("Move up")
        self.remove_btn = QPushButton("Remove")
        self.resume_btn = QPushButton("Resume queue")
        self.up_btn.clicked.connect(lambda: self._act(queue.move_up, -1))
        self.remove_btn.clicked.connect(lambda: self._act(queue.remove, 0))
        self.resume_btn.clicked.connect(lambda: queue.resume())
        self.list.currentRowChanged.connect(lambda _row: self._update_buttons())
        self.list.itemDoubleClicked.connect(
            lambda entry: self.project_requested.emit(queue.items[self.list.row(entry)].project.name))
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # a long line is elided; its tooltip has it all
        self.list.setTextElideMode(Qt.ElideRight)
        row = QHBoxLayout()  # one row over the list: what goes on, then the buttons
        row.addWidget(self.head, 1)
        row.addWidget(self.up_btn)
        row.addWidget(self.remove_btn)
        row.addWidget(self.resume_btn)
        col = QVBoxLayout(self)
        col.setContentsMargins(8, 2, 8, 6)
        col.setSpacing(4)
        col.addLayout(row)
        col.addWidget(self.list, 1)
        queue.changed.connect(self.refresh)
        queue.controller.state_changed.connect(lambda _s: self.refresh())
        self.refresh()

    def _act(self, fn, shift: int) -> None:
        row = self.list.currentRow()
        fn(row)
        self.list.setCurrentRow(max(0, min(row + shift, self.list.count() - 1)))

    def refresh(self) -> None:
        """Re-list the waiting runs, keeping the selected row."""
        q, c = self.queue, self.queue.controller
        row = self.list.currentRow()
        self.list.clear()
        flats = [item.flat() for item in q.items]
        keys = [k for k in diff_mod.differing_keys(flats) if k not in DESCRIBED]  # what tells them apart
        for i, (item, flat) in enumerate(zip(q.items, flats), start=1):
            differs = differs_all(flat, keys[:MAX_KEYS])
            queued = time.strftime("%H:%M", time.localtime(item.queued_at))
            entry = QListWidgetItem(f"{i}.  {item.describe()}" + "".join(f" · {d}" for d in differs))
            entry.setToolTip("\n".join([f"{item.describe()}, queued at {queued} (double-click: open the project)",
                                         str(item.project.path)]
                                        + differs_all(flat, keys)))
            self.list.addItem(entry)
        self.list.setCurrentRow(min(row, self.list.count() - 1) if self.list.count() else -1)
        running = f"Running: {c.project.name} · {c.run_dir.name}. " if c.running and c.project and c.run_dir else ""
        if not q.items:
            waiting = "No runs queued. While a run goes, Start reads “Queue” and queues the open project's config."
        elif q.held and q.restored:
            waiting = f"{len(q.items)} queued from the last session, held; Resume queue starts them."
        elif q.held:
            waiting = f"{len(q.items)} queued, held since a Stop; Resume queue goes on."
        else:
            waiting = f"{len(q.items)} queued; the first starts when this run ends."
        self.head.setText(running + waiting + "".join(f" {note}" for note in q.notes))
        self.resume_btn.setVisible(q.held)
        self._update_buttons()

    def _update_buttons(self) -> None:
        row = self.list.currentRow()
        self.up_btn.setEnabled(row > 0)
        self.remove_btn.setEnabled(row >= 0)

    def status_text(self) -> str:
        """The status-bar button's text: "Queue · 2" (", held")."""
        q = self.queue
        return f"Queue · {len(q.items)}" + (", held" if q.held else "")


class QueueUi(NamedTuple):
    """The window's queue and what shows it."""

    queue: RunQueue
    panel: RunQueuePanel
    dock: QDockWidget
    button: QToolButton


def install(window: QMainWindow, model: ConfigModel, controller: RunController) -> QueueUi:
    """Give `window` a run queue: a dock at the bottom (shown when a run is queued) and a status-bar button
    ("Queue · 2") that shows or hides it."""
    queue = RunQueue(model, controller, window)
    panel = RunQueuePanel(queue)
    dock = QDockWidget("Run queue", window)
    dock.setObjectName("queueDock")
    dock.setWidget(panel)
    window.addDockWidget(Qt.BottomDockWidgetArea, dock)
    dock.hide()
    button = QToolButton()
    button.setObjectName("queueButton")
    button.setCheckable(True)
    button.setToolTip("Show or hide the run queue")
    button.toggled.connect(dock.setVisible)
    dock.visibilityChanged.connect(button.setChecked)
    window.statusBar().addPermanentWidget(button)
    if hasattr(window, "panel"):  # the project list: a double-clicked queued run opens its project
        panel.project_requested.connect(window.panel.open)
    queue.changed.connect(lambda: button.setText(panel.status_text()))
    queue.added.connect(lambda _item: dock.show())
    queue.restore()
    if queue.items or queue.notes:  # the last session's queue, held: shown, so nobody wonders where it went
        dock.show()
    button.setText(panel.status_text())
    return QueueUi(queue, panel, dock, button)
