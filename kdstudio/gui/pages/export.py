"""Export page: formats (and compression) for runs, and exporting a finished run's student to a chosen folder.

Every exported file is reloaded and compared with the live student (max abs difference, top-1 agreement); the
results table shows those numbers with the file sizes.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QMessageBox, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout)

from ...core.projects import RunInfo
from .. import tasks
from ..model import ConfigModel
from ..widgets import Banner, fmt_bytes
from .base import FormPage, rest_of, section_keys

PARITY_OK = 1e-4
COLUMNS = ["Format", "File", "Size", "Max |diff|", "Top-1 agreement", "CPU latency (b=1)", "Check"]


class ExportPage(FormPage):
    """What each run exports, and an Export button for any finished run."""

    title = "Export"
    intro = ("Leave with a deployable student. Each file is reloaded in its own runtime and compared with the "
             "live model on real test inputs, so you know the file you ship computes what you evaluated.")
    exported = Signal(list)
    form_first = True

    def __init__(self, model: ConfigModel, parent=None):
        self.runs: list[RunInfo] = []
        self.task = None
        self.results: list[dict] = []
        super().__init__(model, parent)
        model.project_changed.connect(lambda _p: self.reload_runs())

    def build(self) -> None:
        f = self.form
        f.add_group("Formats written by every run", ["export.formats"] + rest_of("export", ["export.formats"]))
        if section_keys("compress"):
            f.add_group("Compression after distillation", section_keys("compress"))
        box = QGroupBox("Export a finished run")
        col = QVBoxLayout(box)
        row = QHBoxLayout()
        self.run_combo = QComboBox()
        self.run_combo.setMinimumWidth(260)
        self.run_combo.currentIndexChanged.connect(self._on_run)
        row.addWidget(QLabel("Run"))
        row.addWidget(self.run_combo, 1)
        col.addLayout(row)
        row = QHBoxLayout()
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("the run's exports/ folder")
        browse = QPushButton("Choose folder…")
        browse.clicked.connect(self._browse)
        row.addWidget(QLabel("Output folder"))
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        col.addLayout(row)
        row = QHBoxLayout()
        self.export_btn = QPushButton("Export")
        self.export_btn.setObjectName("primary")
        self.export_btn.clicked.connect(self.export)
        self.open_btn = QPushButton("Open folder")
        self.open_btn.clicked.connect(self._open)
        self.status = QLabel()
        self.status.setWordWrap(True)
        row.addWidget(self.export_btn)
        row.addWidget(self.open_btn)
        row.addWidget(self.status, 1)
        col.addLayout(row)
        self.banner = Banner("error")
        col.addWidget(self.banner)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumHeight(150)
        col.addWidget(self.table)
        self.body.addWidget(box)

    # ---- runs -------------------------------------------------------------------------------------------
    def reload_runs(self, select: Path | None = None) -> None:
        """List the project's runs that have a distilled student."""
        p = self.model.project
        self.runs = [r for r in (p.runs() if p is not None and not p.damaged else [])
                     if (Path(r.path) / "checkpoints" / "distill.pt").is_file() and r.status == "completed"]
        current = select or (self.selected_run().path if self.selected_run() else None)
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for r in self.runs:
            acc = (r.summary.get("student") or {}).get("accuracy")
            self.run_combo.addItem(f"{r.name}  ·  student {acc:.2%}" if acc is not None else r.name, str(r.path))
        i = self.run_combo.findData(str(current)) if current else -1
        self.run_combo.setCurrentIndex(max(i, 0) if self.runs else -1)
        self.run_combo.blockSignals(False)
        self._on_run()

    def selected_run(self) -> RunInfo | None:
        """The run chosen in the combo box."""
        i = self.run_combo.currentIndex()
        return self.runs[i] if 0 <= i < len(self.runs) else None

    def _on_run(self, *_) -> None:
        run = self.selected_run()
        self._update_buttons()
        self.folder.setPlaceholderText(str(Path(run.path) / "exports") if run else "finish a run first")
        if run is not None:
            self.show_results(run.summary.get("exports") or [], note=f"Files written by run {run.name}.")
        else:
            self.show_results([], note="No finished run yet: results appear here after a run completes.")

    def _update_buttons(self) -> None:
        run = self.selected_run()
        self.export_btn.setEnabled(run is not None and self.task is None)
        self.open_btn.setEnabled(run is not None)

    def out_dir(self) -> Path | None:
        """The chosen output folder, or the run's exports/ folder."""
        run = self.selected_run()
        text = self.folder.text().strip()
        return Path(text).expanduser() if text else (Path(run.path) / "exports" if run else None)

    # ---- actions ----------------------------------------------------------------------------------------
    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export to folder", self.folder.text() or str(Path.home()))
        if path:
            self.folder.setText(path)

    def _open(self) -> None:
        out = self.out_dir()
        if out is not None and out.exists():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(out)))

    def export(self) -> tasks.Task | None:
        """Export the selected run's student in the configured formats (asks before overwriting files)."""
        run, out = self.selected_run(), self.out_dir()
        formats = list(self.model.cfg.export.formats) if self.model.cfg else []
        self.banner.clear()
        if run is None or out is None:
            return None
        if not formats:
            self.banner.show_message("Tick at least one format above, then export.")
            return None
        from ...core.export import FORMATS
        existing = [out / FORMATS[f] for f in formats if f in FORMATS and (out / FORMATS[f]).exists()]
        if existing and out != Path(run.path) / "exports":
            names = ", ".join(p.name for p in existing)
            if QMessageBox.question(self, "Overwrite files?", f"{out} already holds {names}. Overwrite?",
                                    QMessageBox.Yes | QMessageBox.No, QMessageBox.No) != QMessageBox.Yes:
                return None
        self.export_btn.setEnabled(False)
        self.status.setText(f"Exporting {', '.join(formats)} to {out}…")
        self.task = tasks.start_task(tasks.export_run, Path(run.path), formats, out,
                                     on_done=self._done, on_error=self._failed)
        return self.task

    def _done(self, results: list) -> None:
        self.task = None
        self.show_results(results, note=f"Exported to {self.out_dir()}.")
        self._update_buttons()
        self.exported.emit(results)

    def _failed(self, message: str, details: str) -> None:
        self.task = None
        self.status.setText("")
        self.banner.show_message(f"<b>Export failed:</b> {message}")
        self._update_buttons()

    def show_results(self, results: list, note: str = "") -> None:
        """Fill the results table: size, parity (max abs diff) and top-1 agreement per file."""
        self.results = list(results)
        self.table.setRowCount(len(results))
        for r, e in enumerate(results):
            diff, agree = e.get("max_abs_diff"), e.get("top1_agreement")
            ok = isinstance(diff, (int, float)) and diff <= PARITY_OK
            lat = (e.get("latency_ms") or {}).get("cpu_b1") if isinstance(e.get("latency_ms"), dict) else None
            cells = [e.get("format", "") + (f" ({e['quantize']})" if e.get("quantize") not in (None, "none") else ""),
                     Path(str(e.get("path", ""))).name, fmt_bytes(e.get("bytes")),
                     f"{diff:.2e}" if isinstance(diff, (int, float)) else "–",
                     f"{agree:.2%}" if isinstance(agree, (int, float)) else "–",
                     f"{lat:.3f} ms" if isinstance(lat, (int, float)) else "–",
                     "✓ matches" if ok else "✗ differs"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 1:
                    item.setToolTip(str(e.get("path", "")))
                if c in (2, 3, 4, 5):
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if c == 6:
                    item.setForeground(Qt.darkGreen if ok else Qt.red)
                self.table.setItem(r, c, item)
        self.status.setText(note)
