"""Two runs side by side: the Evaluate page's figures of both (accuracy per model, size, latency, the ratios) with
the difference, and the settings that differ between them. Also the one reader of a past run's config that the
runs table (its setting columns) and "Load settings" share."""

from __future__ import annotations

import html
import math
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QLabel, QTreeWidget, \
    QTreeWidgetItem, QVBoxLayout

from ...core import config as config_mod
from ...core.config import Config, diff as diff_mod
from ...core.store.files import SWEEP_TOML, RunDir
from ...core.store.projects import RunInfo
from ...core.store.run_labels import read_label
from ..widgets import fmt_pct, fmt_pts, fmt_ratio_said
from .evaluate import COLUMNS as FIGURES, NAMES, model_rows
from .run_rows import name_and_time

_configs: dict[str, tuple[float, dict | None]] = {}  # run folder -> (mtime of its config, flattened config)


def config_file(run_dir: str | Path) -> Path:
    """The config a run folder ran with: config.toml, or a sweep folder's sweep.toml."""
    single = RunDir(run_dir).config
    return single if single.is_file() or not (Path(run_dir) / SWEEP_TOML).is_file() else Path(run_dir) / SWEEP_TOML


def load_run_config(run_dir: str | Path) -> Config:
    """The run's config as a Config (a ConfigError with one sentence when it is missing or cannot be read)."""
    path = config_file(run_dir)
    if not path.is_file():
        raise config_mod.ConfigError(f"Run '{Path(run_dir).name}' has no {path.name}; its settings are unknown.")
    return config_mod.load(path)


def run_config(run_dir: str | Path) -> dict | None:
    """The run's flattened config (config/diff.flatten), or None when it has none or it cannot be read; read
    again only when the file changed."""
    path = config_file(run_dir)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    cached = _configs.get(str(run_dir))
    if cached is None or cached[0] != mtime:
        try:
            flat = diff_mod.flatten(config_mod.load(path).to_dict())
        except (config_mod.ConfigError, OSError):
            flat = None
        cached = _configs[str(run_dir)] = (mtime, flat)
    return cached[1]


# Figure title -> (the raw value it shows, how B differs from A: "pts" for a share, "ratio" for B / A, "delta")
_RAW = {"Test accuracy": ("accuracy", "pts"), "Top-5": ("top5", "pts"), "Agreement": ("teacher_agreement", "pts"),
        "ECE": ("ece", "delta"), "Parameters": ("params", "ratio"), "FLOPs": ("flops", "ratio"),
        "Size": ("bytes", "ratio"), "Latency b=1": ("latency_ms_cpu_b1", "ratio"),
        "Latency b=64": ("latency_ms_cpu_b64", "ratio")}


def difference(a, b, kind: str) -> str:
    """How B's value differs from A's: '+1.2 pts', '0.50×' (B / A), '+0.003'; '' when either is unknown."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (a, b)):
        return ""
    if kind == "pts":
        return fmt_pts(b - a)
    if kind == "ratio":
        return f"{b / a:.2f}×" if a > 0 else ""
    return f"{b - a:+.3f}"


def _models(summary: dict) -> dict[str, dict]:
    """key -> metrics of every model in a summary, as the Evaluate page's table reads them."""
    table = {r.get("model"): r for r in ((summary.get("evaluation") or {}).get("table") or []) if isinstance(r, dict)}
    return {key: {**m, "_key": key, "_table_row": table.get(key)} for key, m in model_rows(summary)}


class CompareDialog(QDialog):
    """Run A (the older) beside run B: their figures with B's difference, and every setting that differs."""

    def __init__(self, a: RunInfo, b: RunInfo, name_a: str, name_b: str, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Compare {name_a} and {name_b}")
        self.runs = (a, b)
        heads = ["", f"A: {name_a}", f"B: {name_b}"]
        self.figures = _tree(heads + ["B vs A"])
        self._fill_figures(a, b)
        self.settings = _tree(["Setting"] + heads[1:])
        self.same = QLabel()
        self.same.setWordWrap(True)
        self._fill_settings(a, b)
        intro = QLabel(f"A: <b>{_html(name_a)}</b> ({_when(a)}, {a.status}){_note(a)}<br>"
                       f"B: <b>{_html(name_b)}</b> ({_when(b)}, {b.status}){_note(b)}<br>"
                       "Figures on each run's test split; “B vs A” is B’s difference (in points) or B / A.")
        intro.setWordWrap(True)
        box = QDialogButtonBox(QDialogButtonBox.Close)
        box.rejected.connect(self.close)
        col = QVBoxLayout(self)
        col.addWidget(intro)
        col.addWidget(self.figures, 4)
        title = QLabel("Settings that differ")
        title.setObjectName("sectionTitle")
        col.addWidget(title)
        col.addWidget(self.same)
        col.addWidget(self.settings, 1)
        col.addWidget(box)
        self.resize(760, 600)

    def _fill_figures(self, a: RunInfo, b: RunInfo) -> None:
        ha, hb = a.headline(), b.headline()
        headline = [("Student accuracy", fmt_pct(ha["student"]), fmt_pct(hb["student"]),
                     difference(ha["student"], hb["student"], "pts")),
                    ("KD gain", fmt_pts(ha["kd_gain"]), fmt_pts(hb["kd_gain"]),
                     difference(ha["kd_gain"], hb["kd_gain"], "pts")),
                    ("Smaller", fmt_ratio_said(ha["params_ratio"], "smaller", "larger"),
                     fmt_ratio_said(hb["params_ratio"], "smaller", "larger"), ""),
                    ("Faster", fmt_ratio_said(ha["speedup"], "faster", "slower"),
                     fmt_ratio_said(hb["speedup"], "faster", "slower"), "")]
        for row in headline:
            self.figures.addTopLevelItem(_row(row))
        ma, mb = _models(a.summary), _models(b.summary)
        ta, tb = ma.get("teacher", {}), mb.get("teacher", {})
        for key in dict.fromkeys([*ma, *mb]):
            parent = QTreeWidgetItem([NAMES.get(key, key)])
            for title, cell in FIGURES:
                x, y = ma.get(key), mb.get(key)
                texts = [cell(x, ta) if x else "–", cell(y, tb) if y else "–"]
                if texts == ["–", "–"]:
                    continue
                raw, kind = _RAW.get(title, (None, ""))
                change = difference((x or {}).get(raw), (y or {}).get(raw), kind) if raw else ""
                parent.addChild(_row((title, *texts, change)))
            if parent.childCount():
                self.figures.addTopLevelItem(parent)
                parent.setExpanded(True)
        _fit(self.figures)

    def _fill_settings(self, a: RunInfo, b: RunInfo) -> None:
        ca, cb = run_config(a.path), run_config(b.path)
        missing = [r.path.name for r, c in ((a, ca), (b, cb)) if c is None]
        if missing:
            self.same.setText(f"The config of {' and '.join(missing)} is missing or cannot be read, so the settings "
                              "cannot be compared.")
            self.settings.hide()
            return
        rows = diff_mod.diff(ca, cb)
        self.same.setText("" if rows else "Both runs ran with the same settings.")
        self.same.setVisible(not rows)
        self.settings.setVisible(bool(rows))
        for key, x, y in rows:
            self.settings.addTopLevelItem(_row((key, diff_mod.show(x), diff_mod.show(y)), align_from=3))
        _fit(self.settings)

    def differing_settings(self) -> list[str]:
        """The keys the settings table lists (what a test or a reader checks)."""
        return [self.settings.topLevelItem(i).text(0) for i in range(self.settings.topLevelItemCount())]


def _tree(heads: list[str]) -> QTreeWidget:
    tree = QTreeWidget()
    tree.setHeaderLabels(heads)
    tree.setRootIsDecorated(True)
    tree.setAlternatingRowColors(True)
    tree.setUniformRowHeights(True)
    tree.header().setStretchLastSection(False)
    tree.header().setSectionResizeMode(QHeaderView.ResizeToContents)
    return tree


def _row(texts, align_from: int = 1) -> QTreeWidgetItem:
    item = QTreeWidgetItem([str(t) for t in texts])
    for c in range(align_from, len(texts)):
        item.setTextAlignment(c, Qt.AlignRight | Qt.AlignVCenter)
    return item


def _fit(tree: QTreeWidget) -> None:
    for c in range(tree.columnCount()):
        tree.resizeColumnToContents(c)


def _when(run: RunInfo) -> str:
    """When the run started (its folder's name when that is unknown), for the line that names it."""
    name, when = name_and_time(run)
    return _html(when or name)  # no name given: the name is the start time


def _note(run: RunInfo) -> str:
    note = read_label(run.path)["note"]
    return f" — {_html(note)}" if note else ""


def _html(text: str) -> str:
    return html.escape(text)
