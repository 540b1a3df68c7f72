"""Run history: every run of the project with its name, status and headline metrics, then the settings that differ
between the runs (one column each, like TensorBoard's hparams view); sortable by any column. Select several to
overlay their curves, two to compare them side by side (pages/compare.py), one to load its settings back."""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QIcon
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QInputDialog, QLabel,
                               QMessageBox, QPushButton, QStyle, QStyleOptionButton, QTreeWidget, QTreeWidgetItem,
                               QVBoxLayout, QWidget)

from ...core.config import diff as diff_mod
from ...core.errors import KDError
from ...core.outputs.gain import gain_sentence, verdict
from ...core.store.projects import Project, RunInfo
from ...core.store.files import RunDir
from ...core.store.run_labels import write_label
from ..widgets import STATUS_COLORS, dot_icon, fmt_pct, fmt_pts, fmt_ratio_said
from .compare import CompareDialog, run_config
from .run_rows import SORT_KEY, RunItem, name_of, note_dialog, tip_name

# The first columns are fixed (the settings that differ follow them): the metrics stay in view without scrolling.
COLUMNS = ["Run", "Status", "Teacher", "Student", "Baseline", "KD gain", "Smaller", "Faster"]
BUTTON_TEXTS = ("Compare", "Load settings", "Resume run", "Open folder", "Delete…")  # narrow: icons + tooltips
BUTTON_ICONS = (QStyle.SP_FileDialogDetailedView, QStyle.SP_ArrowBack, QStyle.SP_MediaPlay, QStyle.SP_DirOpenIcon,
                QStyle.SP_TrashIcon)


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


class RunHistory(QWidget):
    """A table of the project's runs; emits the selected runs and resume requests."""

    selection_changed = Signal(list)   # [RunInfo]
    resume_requested = Signal(object)  # RunInfo
    load_requested = Signal(object)    # RunInfo whose settings go back into the project (gui/load_settings.py)
    renamed = Signal(object)           # the Path of a run whose name was changed (other views show it again)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.project: Project | None = None
        self.live: tuple[Path, str] | None = None
        self.runs: list[RunInfo] = []
        self.setting_keys: list[str] = []  # the settings that differ between the listed runs (columns after COLUMNS)
        self.compare_dialog: CompareDialog | None = None
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setSortingEnabled(True)
        self.tree.sortByColumn(0, Qt.DescendingOrder)  # newest first
        self.tree.setEditTriggers(QAbstractItemView.NoEditTriggers)  # the name only, by double-click or Rename…
        self.tree.itemDoubleClicked.connect(self._on_double_click)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.tree.header().setStretchLastSection(False)
        self.tree.itemSelectionChanged.connect(self._on_selection)
        self.compare_btn = QPushButton("Compare")
        self.compare_btn.setToolTip("Compare: two selected runs side by side, their results and the settings that "
                                    "differ")
        self.load_btn = QPushButton("Load settings")
        self.load_btn.setToolTip("Load settings: put the selected run's settings back into the project (undo in the "
                                 "status bar)")
        self.resume_btn = QPushButton("Resume run")
        self.resume_btn.setToolTip("Resume run: continue a stopped run from its last checkpoint")
        self.open_btn = QPushButton("Open folder")
        self.open_btn.setToolTip("Open folder: the selected run's folder")
        self.delete_btn = QPushButton("Delete…")
        self.delete_btn.setToolTip("Delete…: the selected runs with their checkpoints and exports (asks first)")
        self.buttons = (self.compare_btn, self.load_btn, self.resume_btn, self.open_btn, self.delete_btn)
        self.icons_only = False  # True: the row was too narrow for the texts
        self.compare_btn.clicked.connect(self.compare)
        self.load_btn.clicked.connect(self._load)
        self.resume_btn.clicked.connect(self._resume)
        self.open_btn.clicked.connect(self._open)
        self.delete_btn.clicked.connect(self._delete)
        title = QLabel("Runs")
        title.setObjectName("sectionTitle")
        self.tree.setToolTip("Select one run to see its curves and results, several (Ctrl/Shift) to overlay them, "
                             "two to compare them; double-click a name to rename the run")
        self.rename_act = QAction("Rename…", self, triggered=self.rename)
        self.note_act = QAction("Note…", self, triggered=self.edit_note)
        self.compare_act = QAction("Compare", self, triggered=self.compare)
        self.load_act = QAction("Load settings", self, triggered=self._load)
        self.tree.setContextMenuPolicy(Qt.ActionsContextMenu)
        self.tree.addActions([self.rename_act, self.note_act, self.compare_act, self.load_act])
        self.title = title
        bar = QHBoxLayout()
        bar.addWidget(title, 1)
        for button in self.buttons:
            bar.addWidget(button)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.addLayout(bar)
        col.addWidget(self.tree, 1)
        self._update_buttons()

    # ---- width: the button row shows icons instead of holding the page wide -----------------------------------
    def _row_width(self, icons: bool) -> int:
        """The width the title and the buttons need, with texts or with icons only."""
        spacing = max(self.layout().spacing(), 6)
        return self.title.minimumSizeHint().width() + len(self.buttons) * spacing + sum(
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
        self.tree.setSortingEnabled(False)  # rows go in unsorted, then are sorted once
        self.tree.clear()
        self.runs = self.project.runs() if self.project is not None and not self.project.damaged else []
        configs = {str(r.path): run_config(r.path) for r in self.runs}
        self.setting_keys = diff_mod.differing_keys(list(configs.values()))
        self.tree.setHeaderLabels(COLUMNS + self.setting_keys)
        self.tree.headerItem().setToolTip(0, "The run's name (double-click it to rename the run), else when it "
                                          "started; sorted by start time")
        for c, key in enumerate(self.setting_keys, start=len(COLUMNS)):
            self.tree.headerItem().setToolTip(c, f"{key}: differs between these runs")
        for run in self.runs:
            item = self._item(run, configs[str(run.path)])
            self.tree.addTopLevelItem(item)
            if str(run.path) in keep:
                item.setSelected(True)
        self.tree.setSortingEnabled(True)
        self.tree.blockSignals(False)
        self._update_buttons()

    def _item(self, run: RunInfo, config: dict | None) -> RunItem:
        """One run's row: its name (or start time), status, metrics, then its values of the differing settings."""
        status = run.status
        if self.live and Path(self.live[0]) == Path(run.path):
            status = self.live[1]
        h = run.headline()
        values = [name_of(run), status, fmt_pct(h["teacher"]), fmt_pct(h["student"]),
                  fmt_pct(h["baseline"]), gain_cell(h["kd_gain"], h.get("kd_gain_stats")),
                  fmt_ratio_said(h["params_ratio"], "smaller", "larger"),
                  fmt_ratio_said(h["speedup"], "faster", "slower")]
        keys = [run.started or run.name, status, h["teacher"], h["student"], h["baseline"], h["kd_gain"],
                h["params_ratio"], h["speedup"]]
        for key in self.setting_keys:
            value = diff_mod.MISSING if config is None else config.get(key, diff_mod.MISSING)
            values.append(diff_mod.show(value))
            keys.append(None if value is diff_mod.MISSING else value if isinstance(value, (int, float, str))
                        else diff_mod.show(value))
        item = RunItem(values)
        for c, key in enumerate(keys):
            item.setData(c, SORT_KEY, key)
        item.setFlags(item.flags() | Qt.ItemIsEditable)
        item.setIcon(1, dot_icon(STATUS_COLORS.get(status, "#9aa0a6")))
        item.setData(0, Qt.UserRole, run)
        tip_name(item, run)
        if run.summary.get("error"):
            item.setToolTip(1, run.summary["error"])
        if h["kd_gain"] is not None:
            item.setToolTip(COLUMNS.index("KD gain"), gain_sentence(h.get("kd_gain_stats"), h["kd_gain"]))
        if config is None:
            for c in range(len(COLUMNS), len(values)):
                item.setToolTip(c, "This run's config.toml is missing or cannot be read.")
        for c in range(2, len(values)):
            item.setTextAlignment(c, Qt.AlignRight | Qt.AlignVCenter)
        return item

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
        self.compare_btn.setEnabled(len(sel) == 2)
        self.compare_act.setEnabled(len(sel) == 2)
        loadable = one is not None and run_config(one.path) is not None
        self.load_btn.setEnabled(loadable)
        self.load_act.setEnabled(loadable)
        self.rename_act.setEnabled(one is not None)
        self.note_act.setEnabled(one is not None)

    # ---- name and note ------------------------------------------------------------------------------------
    def _current_item(self) -> QTreeWidgetItem | None:
        items = self.tree.selectedItems()
        return items[0] if len(items) == 1 else None

    def _on_double_click(self, item: QTreeWidgetItem, column: int) -> None:
        if column == 0:
            self.tree.editItem(item, 0)

    def rename(self) -> None:
        """Edit the selected run's name in place (Enter keeps it; an empty name shows the start time again)."""
        item = self._current_item()
        if item is not None:
            self.tree.editItem(item, 0)

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        """The name cell was edited: an unchanged text does nothing, a new one is written to the run's run.json."""
        run = item.data(0, Qt.UserRole)
        if column != 0 or run is None:
            return
        typed, shown = item.text(0).strip(), name_of(run)
        if typed != shown:
            try:
                write_label(run.path, name=typed)
            except KDError as e:
                QMessageBox.warning(self, "Rename run", str(e))
        self.tree.blockSignals(True)
        item.setText(0, name_of(run))
        tip_name(item, run)
        self.tree.blockSignals(False)
        if typed != shown:
            self._refresh_compare(Path(run.path))
            self.renamed.emit(Path(run.path))

    def _refresh_compare(self, path: Path) -> None:
        """An open comparison of the renamed run says its new name (built again in the same place)."""
        d = self.compare_dialog
        if d is None or not d.isVisible() or all(Path(r.path) != path for r in d.runs):
            return
        a, b = d.runs
        geometry = d.geometry()
        d.close()
        d.deleteLater()
        self.compare_dialog = CompareDialog(a, b, name_of(a), name_of(b), self)
        self.compare_dialog.setGeometry(geometry)
        self.compare_dialog.show()

    def edit_note(self) -> QInputDialog | None:
        """A dialog for the selected run's note (kept in its run.json; shown in the name's tooltip)."""
        item = self._current_item()
        if item is None:
            return None
        run = item.data(0, Qt.UserRole)
        dialog = note_dialog(self, run, name_of(run))
        dialog.textValueSelected.connect(lambda text: self._set_note(item, run, text))
        dialog.open()
        self.note_dialog = dialog
        return dialog

    def _set_note(self, item: QTreeWidgetItem, run: RunInfo, text: str) -> None:
        try:
            write_label(run.path, note=text)
        except KDError as e:
            QMessageBox.warning(self, "Run note", str(e))
            return
        self.tree.blockSignals(True)
        tip_name(item, run)
        self.tree.blockSignals(False)

    # ---- compare and load -----------------------------------------------------------------------------
    def compare(self) -> CompareDialog | None:
        """Open the side-by-side view of the two selected runs (the older one on the left)."""
        sel = self.selected()
        if len(sel) != 2:
            return None
        older, newer = sorted(sel, key=lambda r: (r.started, r.name))
        if self.compare_dialog is not None:  # one comparison at a time: the previous one goes
            self.compare_dialog.close()
            self.compare_dialog.deleteLater()
        self.compare_dialog = CompareDialog(older, newer, name_of(older), name_of(newer), self)
        self.compare_dialog.show()
        return self.compare_dialog

    def _load(self) -> None:
        sel = self.selected()
        if len(sel) == 1:
            self.load_requested.emit(sel[0])

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
