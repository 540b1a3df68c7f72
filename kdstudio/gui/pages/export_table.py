"""The Export page's table of exported files: one row per file (a file exported again replaces its row), the folder
it lies in, its size, the parity figures and the verdict of the format's own parity rule (core/outputs/parity.py)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem

from ...core.outputs import parity
from ...core.store import summary as summary_mod
from .. import theme
from ..widgets import fmt_bytes

COLUMNS = ["Format", "File", "Folder", "Size", "Max |diff|", "Top-1 agreement", "CPU latency (b=1)", "Check"]
FOLDER, CHECK = COLUMNS.index("Folder"), COLUMNS.index("Check")
NUMBERS = {COLUMNS.index(c) for c in ("Size", "Max |diff|", "Top-1 agreement", "CPU latency (b=1)")}


def row_cells(e: dict) -> tuple[list[str], bool]:
    """The texts of one exported file's row, and whether the file passed its parity rule."""
    diff, agree = e.get("max_abs_diff"), e.get("top1_agreement")
    ok, check = parity.verdict(e)
    lat = (e.get("latency_ms") or {}).get("cpu_b1") if isinstance(e.get("latency_ms"), dict) else None
    path = Path(str(e.get("path", "")))
    quant = f" ({e['quantize']})" if e.get("quantize") not in (None, "none") else ""
    return [e.get("format", "") + quant, path.name, str(path.parent), fmt_bytes(e.get("bytes")),
            f"{diff:.2e}" if isinstance(diff, (int, float)) else "–",
            f"{agree:.2%}" if isinstance(agree, (int, float)) else "–",
            f"{lat:.3f} ms" if isinstance(lat, (int, float)) else "–", check], ok


class ExportsTable(QTableWidget):
    """Exported files with their folder and parity; `show_exports` replaces rows of files exported again."""

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.entries: list[dict] = []
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().hide()
        self.setEditTriggers(QTableWidget.NoEditTriggers)
        self.setSelectionBehavior(QTableWidget.SelectRows)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.ElideLeft)  # a long folder keeps its last, telling part in view
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(FOLDER, QHeaderView.Stretch)
        header.setStretchLastSection(False)
        self.setMinimumHeight(150)

    def show_exports(self, entries: list[dict]) -> None:
        """Show `entries`, one row per file (the last entry of a file wins)."""
        self.entries = summary_mod.merge_exports([], list(entries))
        self.setRowCount(len(self.entries))
        for r, e in enumerate(self.entries):
            cells, ok = row_cells(e)
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c in (1, FOLDER):
                    item.setToolTip(str(e.get("path", "")))
                if c in NUMBERS:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if c == CHECK:
                    item.setForeground(theme.qcolor("ok" if ok else "error"))
                    rule = parity.check(e)
                    item.setToolTip(f"needs max |diff| ≤ {rule['max']:.0e}" if "max" in rule else
                                    f"needs top-1 agreement ≥ {rule['min']:.0%} on {e.get('checked_on', '?')} "
                                    "test inputs")
                self.setItem(r, c, item)

    def selected_folder(self) -> Path | None:
        """The folder of the selected row's file (None without a selection)."""
        rows = {i.row() for i in self.selectedItems()}
        return Path(str(self.entries[min(rows)].get("path", ""))).parent if rows else None
