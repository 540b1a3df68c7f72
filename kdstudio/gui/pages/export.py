"""Export page: formats (and compression) for runs, and exporting a finished run's student to a chosen folder.

A sweep (seeds or a grid) is one entry in the run list; its seeds / grid points are picked in a second list, each
with its test accuracy, and the chosen one is exported like a single run, in the formats and weights ticked for
this export (they start as the project's and never change its settings). Every exported file is reloaded and
compared with the live student (max abs difference, top-1 agreement); the results table (export_table.py) shows
those numbers with the file sizes and the verdict of each format's parity rule.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QMessageBox, QPushButton, QVBoxLayout, QWidget)

from ...core import config as config_mod
from ...core.store.projects import RunInfo
from ...core.store import summary as summary_mod
from ...core.store.files import RunDir
from .. import tasks
from ..forms import CHECKS_PER_ROW
from ..model import ConfigModel
from ..widgets import Banner, fmt_pct, fmt_pts
from . import export_plan
from .base import FormPage, rest_of, section_keys
from .export_table import ExportsTable
from .run_rows import name_of, picker_text


class ExportPage(FormPage):
    """What each run exports, and an Export button for any finished run."""

    title = "Export"
    intro = ("Leave with a deployable student. Each file is reloaded in its own runtime and compared with the "
             "live model on real test inputs, so you know the file you ship computes what you evaluated.")
    exported = Signal(list)
    form_first = True

    def __init__(self, model: ConfigModel, parent=None):
        self.runs: list[RunInfo] = []
        self.subs: list[dict] = []  # the seeds / grid points of the selected sweep (export_plan.sub_runs)
        self.task = None
        self.results: list[dict] = []
        super().__init__(model, parent)
        model.project_changed.connect(lambda _p: self.reload_runs())
        self.reload_runs()  # built when first shown: the project's runs are there already

    def build(self) -> None:
        f = self.form
        f.add_group("Formats written by every run", ["export.formats"] + rest_of("export", ["export.formats"]))
        box = QGroupBox("Export a finished run")
        col = QVBoxLayout(box)
        grid = QGridLayout()  # captions in one column, so the run, seed and folder boxes line up
        grid.setColumnStretch(1, 1)
        self.run_combo = QComboBox()
        self.run_combo.setMinimumWidth(260)
        self.run_combo.currentIndexChanged.connect(self._on_run)
        grid.addWidget(QLabel("Run"), 0, 0)
        grid.addWidget(self.run_combo, 0, 1, 1, 2)
        self.sub_caption = QLabel("Seed / grid point")
        self.sub_combo = QComboBox()
        self.sub_combo.setMinimumWidth(260)
        self.sub_combo.setToolTip("A sweep trains one student per seed and grid point: choose the one to export. "
                                  "Offered first: of the best point, the seed with the highest validation accuracy.")
        self.sub_combo.currentIndexChanged.connect(self._on_sub)
        grid.addWidget(self.sub_caption, 1, 0)
        grid.addWidget(self.sub_combo, 1, 1, 1, 2)
        self._show_sub_row(False)
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("the run's exports/ folder")
        self.folder.textChanged.connect(lambda _t: self._update_buttons())
        self.browse_btn = QPushButton("Choose folder…")
        self.browse_btn.clicked.connect(lambda: self._browse())  # no signal argument reaches a parameter
        grid.addWidget(QLabel("Output folder"), 2, 0)
        grid.addWidget(self.folder, 2, 1)
        grid.addWidget(self.browse_btn, 2, 2)
        self._build_choices(grid, 3)
        col.addLayout(grid)
        row = QHBoxLayout()
        self.export_btn = QPushButton("Export")
        self.export_btn.setObjectName("primary")
        self.export_btn.clicked.connect(lambda: self.export())  # clicked(bool) must not become `overwrite`
        self.open_btn = QPushButton("Open folder")
        self.open_btn.setToolTip("The output folder, or the folder of the file selected in the table")
        self.open_btn.clicked.connect(lambda: self._open(self.table.selected_folder() or self.out_dir()))
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
        self.table = ExportsTable()
        col.addWidget(self.table)
        self.body.addWidget(box)
        if section_keys("compress"):
            extra = self.extra_form()
            extra.add_group("Compression after distillation (variants are evaluated and can be exported)",
                            section_keys("compress"))
            self.body.addWidget(extra)

    def _build_choices(self, grid: QGridLayout, row: int) -> None:
        """Formats and weights of this export: they start as the project's, and ticking them changes no setting."""
        self.format_checks: dict[str, QCheckBox] = {}
        boxes = QWidget()
        line = QGridLayout(boxes)
        line.setContentsMargins(0, 0, 0, 0)
        for i, name in enumerate(config_mod.field_info("export.formats").metadata.get("choices", ())):
            cb = QCheckBox(name)
            line.addWidget(cb, *divmod(i, CHECKS_PER_ROW))  # laid out as the project's formats above
            self.format_checks[name] = cb
        line.setColumnStretch(CHECKS_PER_ROW, 1)
        boxes.setToolTip("The files this export writes; the project's own formats (above) stay as they are")
        grid.addWidget(QLabel("Formats"), row, 0)
        grid.addWidget(boxes, row, 1, 1, 2)
        self.quantize_combo = QComboBox()
        for q in config_mod.field_info("export.quantize").metadata.get("choices", ()):
            self.quantize_combo.addItem("float32 (none)" if q == "none" else q, q)
        self.quantize_combo.setToolTip("Weights of this export's files (export.quantize explains each)")
        weights = QHBoxLayout()
        weights.addWidget(self.quantize_combo)
        weights.addStretch(1)
        grid.addWidget(QLabel("Weights"), row + 1, 0)
        grid.addLayout(weights, row + 1, 1, 1, 2)

    def config_changed(self, key: str) -> None:
        """The project's export settings changed (or another project opened): this export starts from them."""
        if key in ("", "export.formats", "export.quantize") and self.model.cfg is not None:
            self.set_choices(list(self.model.cfg.export.formats), self.model.cfg.export.quantize)

    def set_choices(self, formats: list[str], quantize: str) -> None:
        """Tick `formats` and choose `quantize` for the next export (the project's settings are not touched)."""
        for name, cb in self.format_checks.items():
            cb.setChecked(name in formats)
        i = self.quantize_combo.findData(quantize)
        self.quantize_combo.setCurrentIndex(max(i, 0))

    def chosen_formats(self) -> list[str]:
        """The formats ticked for this export."""
        return [name for name, cb in self.format_checks.items() if cb.isChecked()]

    def chosen_quantize(self) -> str:
        """The weights chosen for this export."""
        return self.quantize_combo.currentData() or "none"

    # ---- runs -------------------------------------------------------------------------------------------
    def reload_runs(self, select: Path | None = None) -> None:
        """List the project's runs that have a distilled student (sweeps with at least one)."""
        p = self.model.project
        self.runs = [r for r in (p.runs() if p is not None and not p.damaged else []) if export_plan.exportable(r)]
        current = select or (self.selected_run().path if self.selected_run() else None)
        keep_sub = self.export_dir() if current and not select else None
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for r in self.runs:
            self.run_combo.addItem(self._run_text(r), str(r.path))
            self.run_combo.setItemData(self.run_combo.count() - 1, str(r.path), Qt.ToolTipRole)
        i = self.run_combo.findData(str(current)) if current else -1
        self.run_combo.setCurrentIndex(max(i, 0) if self.runs else -1)
        self.run_combo.blockSignals(False)
        self._on_run(keep_sub=keep_sub)

    @staticmethod
    def _run_text(r: RunInfo) -> str:
        if r.is_sweep:
            n, acc = len(r.summary.get("runs") or r.sub_runs()), r.headline()["student"]
            return f"{picker_text(r)}  ·  sweep of {n} runs" + (f"  ·  best point: student {acc:.2%} (mean)"
                                                       if acc is not None else "")
        acc = (r.summary.get("student") or {}).get("accuracy")
        return f"{picker_text(r)}  ·  student {acc:.2%}" if acc is not None else picker_text(r)

    def selected_run(self) -> RunInfo | None:
        """The run chosen in the combo box (for a sweep: the whole sweep)."""
        i = self.run_combo.currentIndex()
        return self.runs[i] if 0 <= i < len(self.runs) else None

    def selected_sub(self) -> dict | None:
        """The seed / grid point chosen for a sweep (None for a single run)."""
        i = self.sub_combo.currentIndex()
        return self.subs[i] if self.subs and 0 <= i < len(self.subs) else None

    def export_dir(self) -> Path | None:
        """The run folder whose student is exported: the run, or the chosen seed / grid point of a sweep."""
        run = self.selected_run()
        if run is None:
            return None
        if run.is_sweep:
            sub = self.selected_sub()
            return Path(sub["folder"]) if sub is not None and sub["exportable"] else None
        return Path(run.path)

    def _on_run(self, *_, keep_sub: Path | None = None) -> None:
        run = self.selected_run()
        self.subs = export_plan.sub_runs(run) if run is not None else []
        self.sub_combo.blockSignals(True)
        self.sub_combo.clear()
        for sub in self.subs:
            self.sub_combo.addItem(self._sub_text(sub), str(sub["folder"]))
            if not sub["exportable"]:
                self.sub_combo.model().item(self.sub_combo.count() - 1).setEnabled(False)
        i = self.sub_combo.findData(str(keep_sub)) if keep_sub else -1
        self.sub_combo.setCurrentIndex(i if i >= 0 else export_plan.default_sub(self.subs))
        self.sub_combo.blockSignals(False)
        grid = any(s["point"] for s in self.subs)
        self.sub_caption.setText("Seed / grid point" if grid else "Seed")
        self._show_sub_row(bool(self.subs))
        self._on_sub()

    @staticmethod
    def _sub_text(sub: dict) -> str:
        """'seed 1  ·  student 98.61%  ·  KD gain +0.6 pts  ·  ★ best point' (or why it cannot be exported)."""
        parts = [export_plan.sub_label(sub)]
        if sub["exportable"]:
            parts.append(f"student {fmt_pct(sub['student'], 2)}")
            if sub["kd_gain"] is not None:
                parts.append(f"KD gain {fmt_pts(sub['kd_gain'])}")
        else:
            parts.append(f"{sub['status']}, nothing to export")
        if sub["best"]:
            parts.append("★ best point")
        return "  ·  ".join(parts)

    def _show_sub_row(self, visible: bool) -> None:
        self.sub_caption.setVisible(visible)
        self.sub_combo.setVisible(visible)

    def _where(self) -> str:
        """'run X' or 'run X, seed 1 (temperature-4)' for the status line."""
        run, sub = self.selected_run(), self.selected_sub()
        return f"run {name_of(run)}" + (f", {export_plan.sub_label(sub)}" if sub is not None else "") if run else ""

    def _on_sub(self, *_) -> None:
        folder = self.export_dir()
        self._update_buttons()
        self.folder.setPlaceholderText(str(RunDir(folder).exports) if folder else "finish a run first")
        if folder is not None:
            sub = self.selected_sub()
            summary = sub["summary"] if sub is not None else self.selected_run().summary
            self.show_results(summary.get("exports") or [], note=f"Files written by {self._where()}.")
        else:
            self.show_results([], note="No finished run yet: results appear here after a run completes.")

    def _update_buttons(self) -> None:
        if not hasattr(self, "card_btn"):  # the form loads (and ticks the formats) while build() runs
            return
        folder = self.export_dir()
        self.export_btn.setEnabled(folder is not None and self.task is None)
        self.open_btn.setEnabled(folder is not None)
        out = self.out_dir()
        self.card_btn.setEnabled(out is not None and (out / "MODEL_CARD.md").is_file())

    def out_dir(self) -> Path | None:
        """The chosen output folder, or the exported run's exports/ folder."""
        folder = self.export_dir()
        text = self.folder.text().strip()
        return Path(text).expanduser() if text else (RunDir(folder).exports if folder else None)

    # ---- actions ----------------------------------------------------------------------------------------
    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export to folder", self.folder.text() or str(Path.home()))
        if path:
            self.folder.setText(path)

    def _open(self, target: Path | None) -> None:
        if target is not None and target.exists():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(target)))

    def export(self, overwrite: bool | None = None) -> tasks.Task | None:
        """Export the chosen run's student (for a sweep: the chosen seed / grid point) in the formats and weights
        ticked for this export; asks before replacing files, naming every one (model card and plots included).
        `overwrite` None asks; True / False answer for the user."""
        folder, out, cfg = self.export_dir(), self.out_dir(), self.model.cfg
        self.banner.clear()
        if folder is None or out is None or cfg is None:
            return None
        formats, quantize = self.chosen_formats(), self.chosen_quantize()
        if not formats:
            self.banner.show_message("Tick at least one format for this export, then export.")
            return None
        existing = export_plan.files_replaced(out, folder, formats, quantize)
        if existing and overwrite is None:
            answer = QMessageBox.question(self, "Replace files?", self.overwrite_question(out, existing),
                                          QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
            overwrite = answer == QMessageBox.Yes
        if existing and not overwrite:
            return None
        self.export_btn.setEnabled(False)
        self.status.setText(f"Exporting {', '.join(formats)} of {self._where()} to {out}…")
        self.task = tasks.start_task(tasks.export_run, folder, formats, out, quantize, cfg.export.model,
                                     bool(overwrite), owner=self, on_done=self._done, on_error=self._failed)
        return self.task

    @staticmethod
    def overwrite_question(out: Path, existing: list[str]) -> str:
        """The question asked before an export replaces files: every file that will be replaced, one a line."""
        n = len(existing)
        return (f"{out} already holds {n} file{'s' if n != 1 else ''} that this export writes again:\n\n"
                + "\n".join(f"• {name}" for name in existing) + f"\n\nReplace {'them' if n != 1 else 'it'}?")

    def _done(self, result: dict) -> None:
        self.task = None
        exports, failed = result.get("exports", []), result.get("failed", [])
        # every file of this run so far, a file exported again in its old row's place
        self.show_results(summary_mod.merge_exports(self.results, exports),
                          note=f"Exported {result.get('model', 'student')} of {self._where()} to {result.get('out')}.")
        if failed:
            self.banner.show_message("<b>Not exported:</b> " + "; ".join(f"{f['format']}: {f['error']}"
                                                                        for f in failed))
        self._reread_summary()
        self._update_buttons()
        self.exported.emit(exports)

    def _reread_summary(self) -> None:
        """The export recorded its files in the run's summary.json: keep the listed run (or seed) up to date."""
        folder, sub, run = self.export_dir(), self.selected_sub(), self.selected_run()
        summary = summary_mod.read_dict(RunDir(folder).summary) if folder is not None else None
        if isinstance(summary, dict):
            if sub is not None:
                sub["summary"] = summary
            elif run is not None:
                run.summary = summary

    def _failed(self, message: str, details: str) -> None:
        self.task = None
        self.status.setText("")
        self.banner.show_message(f"<b>Export failed:</b> {message}")
        self._update_buttons()

    def show_results(self, results: list, note: str = "") -> None:
        """Fill the results table, one row per file: folder, size, parity and the format's parity verdict."""
        self.table.show_exports(list(results))
        self.results = list(self.table.entries)
        self.status.setText(note)
