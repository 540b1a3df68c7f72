"""Run history: every run of the project with status, date and headline metrics; multi-selection overlays."""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QIcon
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QMessageBox, QPushButton, QStyle,
                               QStyleOptionButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from ...core.errors import KDError
from ...core.outputs.gain import gain_sentence, verdict
from ...core.store.projects import Project, RunInfo
from ...core.store.files import RunDir
from ..widgets import STATUS_COLORS, dot_icon, fmt_pct, fmt_pts, fmt_ratio_said

COLUMNS = ["Started", "Status", "Teacher", "Student", "Baseline", "KD gain", "Smaller", "Faster"]
BUTTON_TEXTS = ("Resume run", "Open folder", "Delete…")  # in a narrow row: icons, with these in the tooltips
BUTTON_ICONS = (QStyle.SP_MediaPlay, QStyle.SP_DirOpenIcon, QStyle.SP_TrashIcon)


_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def gain_cell(kd_gain: float | None, stats: dict | None) -> str:
    """'+2.1 pts · helped', '+0.3 pts · within noise', '+0.3 pts' (not tested); the sentence is the tooltip."""
    if kd_gain is None:
        return "–"
    said = {"helped": "helped", "hurt": "hurt", "noise": "within noise"}.get(verdict(stats) or "")
    return fmt_pts(kd_gain) + (f" · {said}" if said else "")


def clean_log(text: str) -> str:
    """A run's log.txt without the resolved config echoed into its run_started line (it is in config.toml)."""
    out, skipping = [], False
    for line in text.splitlines():
        if _STAMP.match(line):
            skipping = False
            if ", config=" in line:
                line, skipping = line.split(", config=")[0], True
            out.append(line)
        elif not skipping:
            out.append(line)
    return "\n".join(out)


def _when(iso: str) -> str:
    try:
        return _dt.datetime.fromisoformat(iso).strftime("%d %b %H:%M")
    except (TypeError, ValueError):
        return iso or ""


class RunHistory(QWidget):
    """A table of the project's runs; emits the selected runs and resume requests."""

    selection_changed = Signal(list)   # [RunInfo]
    resume_requested = Signal(object)  # RunInfo

    def __init__(self, parent=None):
        super().__init__(parent)
        self.project: Project | None = None
        self.live: tuple[Path, str] | None = None
        self.runs: list[RunInfo] = []
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.tree.header().setStretchLastSection(False)
        self.tree.itemSelectionChanged.connect(self._on_selection)
        self.resume_btn = QPushButton("Resume run")
        self.resume_btn.setToolTip("Resume run: continue a stopped run from its last checkpoint")
        self.open_btn = QPushButton("Open folder")
        self.open_btn.setToolTip("Open folder: the selected run's folder")
        self.delete_btn = QPushButton("Delete…")
        self.delete_btn.setToolTip("Delete…: the selected runs with their checkpoints and exports (asks first)")
        self.buttons = (self.resume_btn, self.open_btn, self.delete_btn)
        self.icons_only = False  # True: the row was too narrow for the texts
        self.resume_btn.clicked.connect(self._resume)
        self.open_btn.clicked.connect(self._open)
        self.delete_btn.clicked.connect(self._delete)
        title = QLabel("Runs")
        title.setObjectName("sectionTitle")
        self.tree.setToolTip("Select one run to see its curves and results, several (Ctrl/Shift) to overlay them")
        self.title = title
        bar = QHBoxLayout()
        bar.addWidget(title, 1)
        bar.addWidget(self.resume_btn)
        bar.addWidget(self.open_btn)
        bar.addWidget(self.delete_btn)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.addLayout(bar)
        col.addWidget(self.tree, 1)
        self._update_buttons()

    # ---- width: the button row shows icons instead of holding the page wide -----------------------------------
    def _row_width(self, icons: bool) -> int:
        """The width the title and the buttons need, with texts or with icons only."""
        spacing = max(self.layout().spacing(), 6)
        return self.title.minimumSizeHint().width() + 3 * spacing + sum(
            _button_width(b, "" if icons else t, self.style().standardIcon(i) if icons else None)
            for b, t, i in zip(self.buttons, BUTTON_TEXTS, BUTTON_ICONS))

    def _show_icons(self, icons: bool) -> None:
        if icons != self.icons_only:
            self.icons_only = icons
            for b, text, icon in zip(self.buttons, BUTTON_TEXTS, BUTTON_ICONS):
                b.setText("" if icons else text)
                b.setIcon(self.style().standardIcon(icon) if icons else QIcon())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override: the row with icons only
        return QSize(max(self._row_width(True), self.tree.minimumSizeHint().width()),
                     super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._show_icons(self._row_width(False) > event.size().width())

    # ---- content ----------------------------------------------------------------------------------------
    def reload(self, project: Project | None = None, live: tuple[Path, str] | None | bool = False) -> None:
        """Re-read the runs (of `project`, when given); `live` = (run folder, state) of the active run."""
        if project is not None or self.project is None:
            self.project = project
        if live is not False:
            self.live = live
        keep = {str(r.path) for r in self.selected()}
        self.tree.blockSignals(True)
        self.tree.clear()
        self.runs = self.project.runs() if self.project is not None and not self.project.damaged else []
        for run in self.runs:
            status = run.status
            if self.live and Path(self.live[0]) == Path(run.path):
                status = self.live[1]
            h = run.headline()
            values = [_when(run.started) or run.name, status, fmt_pct(h["teacher"]), fmt_pct(h["student"]),
                      fmt_pct(h["baseline"]), gain_cell(h["kd_gain"], h.get("kd_gain_stats")),
                      fmt_ratio_said(h["params_ratio"], "smaller", "larger"),
                      fmt_ratio_said(h["speedup"], "faster", "slower")]
            item = QTreeWidgetItem(values)
            item.setIcon(1, dot_icon(STATUS_COLORS.get(status, "#9aa0a6")))
            item.setData(0, Qt.UserRole, run)
            item.setToolTip(0, str(run.path))
            if run.summary.get("error"):
                item.setToolTip(1, run.summary["error"])
            if h["kd_gain"] is not None:
                item.setToolTip(COLUMNS.index("KD gain"), gain_sentence(h.get("kd_gain_stats"), h["kd_gain"]))
            for c in range(2, len(COLUMNS)):
                item.setTextAlignment(c, Qt.AlignRight | Qt.AlignVCenter)
            self.tree.addTopLevelItem(item)
            if str(run.path) in keep:
                item.setSelected(True)
        self.tree.blockSignals(False)
        self._update_buttons()

    def selected(self) -> list[RunInfo]:
        """The selected runs, newest first."""
        return [i.data(0, Qt.UserRole) for i in self.tree.selectedItems()]

    def select_paths(self, paths: list) -> None:
        """Select the runs in these folders (emits selection_changed)."""
        wanted = {str(Path(p)) for p in paths}
        self.tree.blockSignals(True)
        self.tree.clearSelection()
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if str(item.data(0, Qt.UserRole).path) in wanted:
                item.setSelected(True)
        self.tree.blockSignals(False)
        self._on_selection()

    # ---- actions ----------------------------------------------------------------------------------------
    def _on_selection(self) -> None:
        self._update_buttons()
        self.selection_changed.emit(self.selected())

    def _update_buttons(self) -> None:
        sel = self.selected()
        one = sel[0] if len(sel) == 1 else None
        live = self.live[0] if self.live else None
        resumable = one is not None and one.status in ("stopped", "incomplete", "failed") and \
            RunDir(one.path).has_checkpoints() and live is None
        self.resume_btn.setEnabled(bool(resumable))
        self.open_btn.setEnabled(one is not None)
        self.delete_btn.setEnabled(bool(sel) and not any(live and Path(r.path) == Path(live) for r in sel))

    def _resume(self) -> None:
        sel = self.selected()
        if len(sel) == 1:
            self.resume_requested.emit(sel[0])

    def _open(self) -> None:
        sel = self.selected()
        if sel:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(sel[0].path)))

    def _delete(self) -> None:
        sel = self.selected()
        if not sel or self.project is None:
            return
        names = ", ".join(r.name for r in sel[:3]) + (f" and {len(sel) - 3} more" if len(sel) > 3 else "")
        answer = QMessageBox.question(self, "Delete runs", f"Delete {len(sel)} run(s) ({names}) with their "
                                      "checkpoints and exports? This cannot be undone.",
                                      QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        if answer != QMessageBox.Yes:
            return
        for run in sel:
            try:
                self.project.delete_run(run)
            except (KDError, OSError) as e:
                QMessageBox.warning(self, "Delete runs", str(e))
        self.reload()
        self._on_selection()



def _button_width(button: QPushButton, text: str, icon: QIcon | None) -> int:
    """The width `button` asks for with this text and icon (measured as QPushButton.sizeHint does, unchanged)."""
    opt = QStyleOptionButton()
    button.initStyleOption(opt)
    opt.text, opt.icon = text, icon or QIcon()
    w = opt.iconSize.width() + 4 if icon else 0
    size = button.fontMetrics().size(Qt.TextShowMnemonic, text or "XXXX")
    w += size.width() if text or not w else 0
    h = max(opt.iconSize.height() if icon else 0, size.height() if text or not icon else 0)
    return max(button.style().sizeFromContents(QStyle.CT_PushButton, opt, QSize(w, h), button).width(),
               button.minimumWidth())
