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

PARITY_TOL = {"none": 1e-4, "fp16": 1e-2, "bf16": 5e-2, "int8": None}  # int8: identical top-1 predictions
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
        self.card_btn = QPushButton("Model card")
        self.card_btn.setToolTip("MODEL_CARD.md: data, models, metrics, how to load each file")
        self.card_btn.clicked.connect(lambda: self._open(self.out_dir() / "MODEL_CARD.md"))
        self.status = QLabel()
        self.status.setWordWrap(True)
        row.addWidget(self.export_btn)
        row.addWidget(self.open_btn)
        row.addWidget(self.card_btn)
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
        if section_keys("compress"):
            extra = self.extra_form()
            extra.add_group("Compression after distillation (variants are evaluated and can be exported)",
                            section_keys("compress"))
            self.body.addWidget(extra)

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
        out = self.out_dir()
        self.card_btn.setEnabled(out is not None and (out / "MODEL_CARD.md").is_file())

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

    def _open(self, path: Path | None = None) -> None:
        target = path or self.out_dir()
        if target is not None and target.exists():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(target)))

    def export(self, overwrite: bool | None = None) -> tasks.Task | None:
        """Export the selected run's student as the settings above say; asks before overwriting files."""
        run, out, cfg = self.selected_run(), self.out_dir(), self.model.cfg
        self.banner.clear()
        if run is None or out is None or cfg is None:
            return None
        formats, quantize = list(cfg.export.formats), cfg.export.quantize
        if not formats:
            self.banner.show_message("Tick at least one format above, then export.")
            return None
        from ...core import export as export_mod
        names = [export_mod.file_name(f, quantize) for f in formats if f in export_mod.EXTENSIONS]
        existing = [n for n in names if (out / n).exists()]
        if existing and overwrite is None:
            answer = QMessageBox.question(self, "Overwrite files?", f"{out} already holds {', '.join(existing)}. "
                                          "Overwrite them?", QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
            overwrite = answer == QMessageBox.Yes
            if not overwrite:
                return None
        self.export_btn.setEnabled(False)
        self.status.setText(f"Exporting {', '.join(formats)} to {out}…")
        self.task = tasks.start_task(tasks.export_run, Path(run.path), formats, out, quantize, cfg.export.model,
                                     bool(overwrite), on_done=self._done, on_error=self._failed)
        return self.task

    def _done(self, result: dict) -> None:
        self.task = None
        exports, failed = result.get("exports", []), result.get("failed", [])
        self.show_results(exports, note=f"Exported {result.get('model', 'student')} to {result.get('out')}.")
        if failed:
            self.banner.show_message("<b>Not exported:</b> " + "; ".join(f"{f['format']}: {f['error']}"
                                                                        for f in failed))
        self._update_buttons()
        self.exported.emit(exports)

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
            tol = PARITY_TOL.get(e.get("quantize") or "none")
            ok = isinstance(diff, (int, float)) and (diff <= tol if tol is not None else agree == 1.0)
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
