"""The Teacher page's list of the project's trained teachers (core/store/teachers.py): what each was trained with,
its accuracy, the run that trained it and the runs that used it; pick one for the next runs, or delete one."""

from __future__ import annotations

import datetime as _dt

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QMessageBox, QPushButton,
                               QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from ...core.errors import KDError
from ...core.store.teachers import TEACHERS, StoredTeacher, TeacherStore
from ..model import ConfigModel
from ..widgets import fmt_pct

COLUMNS = ["Teacher", "Test acc.", "Trained in run", "Used by", "Stored", "Trained with"]
WITH = COLUMNS.index("Trained with")


def _when(iso) -> str:
    try:
        return _dt.datetime.fromisoformat(str(iso)).strftime("%d %b %H:%M")
    except ValueError:
        return str(iso or "")


class StoredTeachers(QWidget):
    """The project's stored teachers; "Use this teacher" sets teacher.reuse to its id, "Reuse automatically" back
    to auto, "Delete teacher…" removes it (refused while teacher.reuse picks it)."""

    listed = Signal(list)   # [StoredTeacher] after every reload

    def __init__(self, model: ConfigModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.teachers: list[StoredTeacher] = []
        title = QLabel("Trained teachers in this project")
        title.setObjectName("sectionTitle")
        self.note = QLabel()
        self.note.setObjectName("pageIntro")
        self.note.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setWordWrap(True)  # "Trained with" wraps instead of being cut
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SingleSelection)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.tree.header().setSectionResizeMode(WITH, QHeaderView.Stretch)
        self.tree.header().setStretchLastSection(True)
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self.use_btn = QPushButton("Use this teacher")
        self.use_btn.setToolTip("The next runs use the selected teacher (teacher.reuse = its id) instead of "
                                "training one")
        self.auto_btn = QPushButton("Reuse automatically")
        self.auto_btn.setToolTip("teacher.reuse = \"auto\": a run reuses the stored teacher of exactly its settings, "
                                 "data and seed, and trains (and stores) one when there is none")
        self.delete_btn = QPushButton("Delete teacher…")
        self.delete_btn.setToolTip("Remove the selected stored teacher (asks first); runs that used it keep their copy")
        self.use_btn.clicked.connect(self._use)
        self.auto_btn.clicked.connect(lambda: self.model.set("teacher.reuse", "auto"))
        self.delete_btn.clicked.connect(self._delete)
        bar = QHBoxLayout()  # under the list, so the title and the buttons never hold the page wide
        for b in (self.use_btn, self.auto_btn, self.delete_btn):
            bar.addWidget(b)
        bar.addStretch(1)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 6, 0, 0)
        col.addWidget(title)
        col.addWidget(self.note)
        col.addWidget(self.tree)
        col.addLayout(bar)
        model.project_changed.connect(lambda _p: self.reload())
        model.config_changed.connect(lambda key: key in ("", "teacher.reuse") and self.reload())
        self.reload()

    def store(self) -> TeacherStore | None:
        """The project's teachers/ folder (None without a usable project)."""
        p = self.model.project
        return TeacherStore(p.path / TEACHERS) if p is not None and not p.damaged else None

    def reload(self) -> None:
        """Read the store and the runs again (after a run, on showing the page, when teacher.reuse changes)."""
        store, project, cfg = self.store(), self.model.project, self.model.cfg
        self.teachers = store.list() if store is not None else []
        try:
            runs = project.runs() if store is not None else []
        except OSError:
            runs = []
        picked = cfg.teacher.reuse if cfg is not None else "auto"
        chosen = self.selected()
        keep = chosen.id if chosen is not None else picked
        self.tree.clear()
        bold = QFont()
        bold.setBold(True)
        for t in self.teachers:
            users = store.users(t.id, runs)
            values = [t.id + ("  (picked)" if t.id == picked else ""), fmt_pct(t.accuracy), t.run,
                      f"{len(users)} run{'s' if len(users) != 1 else ''}", _when(t.meta.get("created")), t.description]
            item = QTreeWidgetItem(values)
            item.setData(0, Qt.UserRole, t)
            item.setToolTip(WITH, t.description)
            item.setToolTip(COLUMNS.index("Used by"),
                            ", ".join(users) or "no run of this project names it (its runs were deleted)")
            if t.id == picked:
                for c in range(len(COLUMNS)):
                    item.setFont(c, bold)
            self.tree.addTopLevelItem(item)
            if t.id == keep:
                item.setSelected(True)
        if not self.teachers:
            self.note.setText("None yet. A run that trains its teacher here stores it; later runs and sweep points "
                              "with the same teacher settings, data and seed reuse it instead of training it again.")
        elif picked not in ("auto", "never"):
            self.note.setText(f"The next runs use teacher {picked} (teacher.reuse); “Reuse automatically” goes "
                              "back to reusing the teacher of exactly these settings, data and seed.")
        else:
            self.note.setText("A run reuses the teacher of exactly its teacher settings, data and seed, when it is "
                              "listed here" + (" (teacher.reuse = \"never\": every run trains its own)."
                                               if picked == "never" else "; pick one to use it regardless."))
        self.tree.setVisible(bool(self.teachers))
        self._fit_height()
        self._update_buttons()
        self.listed.emit(self.teachers)

    def _fit_height(self) -> None:
        """As tall as its rows (at most about six), so a short list leaves no empty box on the page."""
        rows = min(self.tree.topLevelItemCount(), 6)
        row = max(self.tree.sizeHintForRow(0), self.tree.fontMetrics().height() + 6) if rows else 0
        header = self.tree.header().sizeHint().height()
        self.tree.setFixedHeight(header + rows * row + 2 * self.tree.frameWidth() + 4)

    def selected(self) -> StoredTeacher | None:
        """The selected teacher."""
        items = self.tree.selectedItems()
        return items[0].data(0, Qt.UserRole) if items else None

    def _update_buttons(self) -> None:
        t, cfg = self.selected(), self.model.cfg
        self.use_btn.setEnabled(t is not None and cfg is not None)
        self.delete_btn.setEnabled(t is not None)
        self.auto_btn.setEnabled(cfg is not None and cfg.teacher.reuse != "auto")

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        """A run may have stored a teacher since the list was read."""
        super().showEvent(event)
        self.reload()

    def _use(self) -> None:
        t = self.selected()
        if t is None:
            return
        arch = t.meta.get("arch") or {}
        for key in ("arch", "width", "depth"):  # the stored teacher's shape, so the run builds the same model
            if key in arch:
                self.model.set(f"teacher.{key}", arch[key])
        self.model.set("teacher.source", "train")
        self.model.set("teacher.reuse", t.id)

    def _delete(self) -> None:
        t, store = self.selected(), self.store()
        if t is None or store is None:
            return
        runs = store.users(t.id, self.model.project.runs())
        used = (f" {len(runs)} run(s) used it ({', '.join(runs[:4])}{'…' if len(runs) > 4 else ''}); they keep "
                "their own copy in their checkpoints.") if runs else ""
        answer = QMessageBox.question(self, "Delete teacher", f"Delete stored teacher {t.id} ({t.description})?"
                                      f"{used} A later run with these settings trains it again.",
                                      QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        if answer != QMessageBox.Yes:
            return
        try:
            store.delete(t.id, self.model.cfg)
        except KDError as e:
            QMessageBox.warning(self, "Delete teacher", str(e))
        self.reload()
