"""Rows of the runs table (pages/history.py): what a run is called (its name from run.json, else when it
started), the name's tooltip with its note, the note's dialog, and rows that sort numbers as numbers."""

from __future__ import annotations

import datetime as _dt
import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QInputDialog, QStyle, QTreeWidgetItem, QWidget

from ...core.store.projects import RunInfo
from ...core.store.run_labels import read_label

SORT_KEY = Qt.UserRole + 1  # per column: the value the column sorts by (numbers as numbers, not as text)


class RunItem(QTreeWidgetItem):
    """A row that sorts by each column's value (SORT_KEY): 9.0× before 10.5×, an unknown value below every number."""

    def __lt__(self, other: QTreeWidgetItem) -> bool:
        column = self.treeWidget().sortColumn() if self.treeWidget() is not None else 0
        return _order(self.data(column, SORT_KEY)) < _order(other.data(column, SORT_KEY))


def _order(value) -> tuple:
    """Numbers by value, then texts; None (unknown, not set in that run) first, so it sorts below every value."""
    if isinstance(value, bool):
        return (1, float(value), "")
    if isinstance(value, (int, float)) and value == value:
        return (1, float(value), "")
    return (0, 0.0, "") if value is None else (2, 0.0, str(value))


def _when(iso: str) -> str:
    try:
        return _dt.datetime.fromisoformat(iso).strftime("%d %b %H:%M")
    except (TypeError, ValueError):
        return iso or ""


def name_of(run: RunInfo) -> str:
    """The name the person gave the run, else when it started (else its folder's name)."""
    return read_label(run.path)["name"] or _when(run.started) or run.name


def name_and_time(run: RunInfo) -> tuple[str, str]:
    """(what the run is called, when it started) for headers and pickers; the time is "" when the name is the
    time already (a run nobody named)."""
    name, when = read_label(run.path)["name"], _when(run.started) or run.name
    return (name, when) if name else (when, "")


def heading_html(run: RunInfo, muted: str) -> str:
    """The run's name in bold with its start time small beside it (rich text; `muted` is the time's colour)."""
    name, when = name_and_time(run)
    small = f' <span style="color:{muted}; font-size:small">{html.escape(when)}</span>' if when else ""
    return f"<b>{html.escape(name)}</b>{small}"


def picker_text(run: RunInfo) -> str:
    """The run's name and start time in one plain line, for a combo box: "T=4 baseline  ·  02 Dec 03:04"."""
    name, when = name_and_time(run)
    return f"{name}  ·  {when}" if when else name


def tip_name(item: QTreeWidgetItem, run: RunInfo) -> None:
    """The name cell's tooltip: the folder, the start time when a name hides it, and the note."""
    label = read_label(run.path)
    lines = [str(run.path)] + ([f"started {_when(run.started)}"] if label["name"] and run.started else [])
    item.setToolTip(0, "\n".join(lines + ([f"\nNote: {label['note']}"] if label["note"] else [])))
    # a run with a note says so at a glance; the note itself is in the tooltip
    item.setIcon(0, _note_icon() if label["note"] else QIcon())


def _note_icon() -> QIcon:
    app = QApplication.instance()
    return app.style().standardIcon(QStyle.SP_FileDialogInfoView) if app is not None else QIcon()


def note_dialog(parent: QWidget, run: RunInfo, name: str) -> QInputDialog:
    """A (not yet opened) dialog for a run's note, holding the note it has."""
    dialog = QInputDialog(parent)
    dialog.setWindowTitle("Run note")
    dialog.setLabelText(f"A note on run {name} (what you tried, what you saw):")
    dialog.setOption(QInputDialog.UsePlainTextEditForTextInput)
    dialog.setTextValue(read_label(run.path)["note"])
    dialog.setAttribute(Qt.WA_DeleteOnClose)
    return dialog
