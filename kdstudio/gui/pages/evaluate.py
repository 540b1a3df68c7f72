"""Evaluate page: teacher vs student vs baseline on the test split — what was kept, what was lost, what was won.

Reads the selected run's summary.json. Model rows are every summary entry that has an accuracy (teacher, student,
baseline, and compressed variants as they arrive); everything else in the summary is shown in a tree below.
"""

from __future__ import annotations


from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QBoxLayout, QFrame, QHBoxLayout, QHeaderView, QLabel, QPushButton, QScrollArea,
                               QSizePolicy, QSplitter, QTableWidget, QTableWidgetItem, QTreeWidget, QTreeWidgetItem,
                               QVBoxLayout, QWidget)

from ...core import config as config_mod
from ...core.outputs import gain as gain_mod
from ...core.store.projects import RunInfo
from ...core.store.files import RunDir, read_json
from .. import theme
from ..forms import ConfigForm
from ..model import ConfigModel
from ..palette import MODEL_COLORS
from ..widgets import CardGrid, StatCard, fmt_bytes, fmt_int, fmt_pct, fmt_pts, fmt_ratio_said, ratio_words
from .base import section_keys
from .eval_charts import EvalCharts
from .run_rows import heading_html

ORDER = ("teacher", "student", "baseline")
NAMES = {"teacher": "Teacher", "student": "Student (KD)", "baseline": "Baseline (no KD)"}
COLORS = MODEL_COLORS  # one palette with the Train page's curves


def _ms(v) -> str:
    return f"{v:.3f} ms" if isinstance(v, (int, float)) else "–"


def _num(v, fmt) -> str:
    return fmt(v) if isinstance(v, (int, float)) else "–"


# (title, cell text from (metrics, teacher metrics)); a column whose cells are all "–" is left out.
COLUMNS = [
    ("Test accuracy", lambda m, t: _num(m.get("accuracy"), lambda v: f"{v * 100:.2f}%")),
    ("Top-5", lambda m, t: _num(m.get("top5"), lambda v: f"{v * 100:.1f}%")),
    ("Agreement", lambda m, t: _num(m.get("teacher_agreement"), lambda v: f"{v * 100:.1f}%")),
    ("ECE", lambda m, t: _num(m.get("ece"), lambda v: f"{v:.3f}")),
    ("Parameters", lambda m, t: fmt_int(m.get("params"))),
    ("FLOPs", lambda m, t: fmt_int(m.get("flops"))),
    ("Size", lambda m, t: fmt_bytes(m.get("bytes"))),
    ("Latency b=1", lambda m, t: _ms(m.get("latency_ms_cpu_b1"))),
    ("Latency b=64", lambda m, t: _ms(m.get("latency_ms_cpu_b64"))),
    # the ratios to the teacher come from the engine's evaluation table (computed once, in core/store/summary.py)
    ("Smaller", lambda m, t: _ratio(m, "params_ratio", "smaller", "larger")),
    ("Faster (b=1)", lambda m, t: _ratio(m, "speedup_cpu_b1", "faster", "slower")),
]


def _ratio(m: dict, key: str, more: str, less: str) -> str:
    row = m.get("_table_row") or {}
    value = (row.get("speedup") or {}).get("cpu_b1") if key == "speedup_cpu_b1" else row.get(key)
    return "–" if m.get("_key") == "teacher" or not isinstance(value, (int, float)) else fmt_ratio_said(value, more,
                                                                                                        less)


def model_rows(summary: dict) -> list[tuple[str, dict]]:
    """(key, metrics) of every model in a summary: teacher, student, baseline first, then other variants."""
    rows = [(k, summary[k]) for k in ORDER if isinstance(summary.get(k), dict)]
    for k, v in summary.items():
        if k not in ORDER and isinstance(v, dict) and isinstance(v.get("accuracy"), (int, float)):
            rows.append((k, v))
    for k, v in (summary.get("variants") or {}).items() if isinstance(summary.get("variants"), dict) else ():
        if isinstance(v, dict):
            rows.append((k, v))
    return rows


# The four headline cards: their captions for a single run and for a sweep (seeds/grid) of runs.
RUN_CAPTIONS = ("Accuracy vs teacher", "Gain from distillation", "Smaller", "Faster (CPU, batch 1)")
SWEEP_CAPTIONS = ("Best point", "KD gain at the best point", "Student test accuracy (best point)", "Runs")


class _Lower(QSplitter):
    """Charts and summary/settings. It asks for no more than its minimum size: the page gives it all the height
    that is left and scrolls only when the window is shorter than that minimum (not to reach a preferred height)."""

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return self.minimumSizeHint()


# Page widths (of the scrolled area) at which the lower part changes: charts beside the summary and the settings
# (wide), charts above them with summary | settings side by side (middle), or everything in one column (narrow).
WIDE, MIDDLE = 900, 620


class EvaluatePage(QScrollArea):
    """The comparison of the selected (or latest) finished run. It scrolls when the window is smaller than its
    content needs, and its lower part stacks when narrow, so nothing is cut off or squeezed at 800×600."""

    seeds_started = Signal()  # "Run 3 seeds" started a run (the window shows its progress)
    seeds_queued = Signal(object)  # during a run, "Queue 3 seeds": the Config to queue (the window's run queue)

    def __init__(self, model: ConfigModel, run_ctl=None, parent=None):
        super().__init__(parent)
        self.model = model
        self.run_ctl = run_ctl  # the window's RunController: "Run 3 seeds" starts through it
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        self.run: RunInfo | None = None
        theme.notifier.changed.connect(self._on_scheme)
        title = QLabel("Evaluate")
        title.setObjectName("pageTitle")
        self.heading = QLabel()  # the shown run's name, its start time small beside it
        self.heading.setObjectName("runHeading")
        self.heading.setTextFormat(Qt.RichText)
        self.heading.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.heading.setWordWrap(True)  # a long name wraps beside the title instead of widening the page:
        self.heading.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # it takes the width that is left
        self.subtitle = QLabel("Finish a run to compare the teacher, the distilled student and the baseline.")
        self.subtitle.setObjectName("pageIntro")
        self.subtitle.setWordWrap(True)
        self.kept = StatCard(RUN_CAPTIONS[0])
        self.gain = StatCard(RUN_CAPTIONS[1])
        self.smaller = StatCard(RUN_CAPTIONS[2])
        self.faster = StatCard(RUN_CAPTIONS[3])
        self.seeds_btn = QPushButton("Run 3 seeds")
        self.seeds_btn.clicked.connect(self._run_seeds)
        self.seeds_btn.hide()  # shown when a run's gain is within noise
        self.gain.layout().addWidget(self.seeds_btn, 0, Qt.AlignLeft)
        if run_ctl is not None:
            run_ctl.state_changed.connect(lambda _s: self._update_seeds_btn())
        self.table = QTableWidget(0, 1)
        self.table.hide()  # shown once there is a run to compare (an empty table showed a stray "1" header)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        # every column as wide as its contents, the last one too (stretched, it was squeezed below its text when
        # the others filled the width); a narrow page scrolls the table sideways instead
        self.table.setWordWrap(False)
        self.charts = EvalCharts()
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["summary.json", "value"])
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        self.form = ConfigForm(model.set, model.set_local_error)
        self.form.add_group("Evaluation settings", section_keys("evaluate"))
        model.config_changed.connect(lambda _k: model.cfg and self.form.load(model.cfg))
        model.problems_changed.connect(lambda _p: self.form.mark(model.problem_map()))
        self.form.setVisible(bool(self.form.fields))
        self.side = QWidget()
        self.side_box = QBoxLayout(QBoxLayout.TopToBottom, self.side)
        self.side_box.setContentsMargins(0, 0, 0, 0)
        self.side_box.addWidget(self.tree, 1)
        self.side_box.addWidget(self.form)
        self.lower = _Lower(Qt.Horizontal)
        self.lower.addWidget(self.charts)
        self.lower.addWidget(self.side)
        self.lower.setChildrenCollapsible(False)
        self.cards = CardGrid(self.kept, self.gain, self.smaller, self.faster)
        inner = QWidget()
        col = QVBoxLayout(inner)
        col.setContentsMargins(18, 14, 18, 14)
        head = QHBoxLayout()
        head.addWidget(title)
        head.addSpacing(12)
        head.addWidget(self.heading, 1, Qt.AlignBottom)
        col.addLayout(head)
        col.addWidget(self.subtitle)
        col.addWidget(self.cards)
        col.addWidget(self.table)
        col.addWidget(self.lower, 1)
        self.setWidget(inner)
        self.mode = ""
        self._seed_config = None  # the config "Run 3 seeds" starts (None: the button is hidden)
        self._seeds_queued = False  # "Queue 3 seeds" was pressed for the shown run
        self._arrange("wide")
        if model.cfg is not None:  # built when first shown, after the project was opened
            self.form.load(model.cfg)
            self.form.mark(model.problem_map())

    def _arrange(self, mode: str) -> None:
        """wide: charts | summary over settings; middle: charts over summary | settings; narrow: one column."""
        if mode == self.mode:
            return
        self.mode = mode
        wide = mode == "wide"
        self.lower.setOrientation(Qt.Horizontal if wide else Qt.Vertical)
        self.side_box.setDirection(QBoxLayout.LeftToRight if mode == "middle" else QBoxLayout.TopToBottom)
        self.charts.set_floor_height(260 if wide else 340)  # more when the matrix needs it; the page scrolls
        self.tree.setMinimumHeight(100 if wide else 200)
        self.side_box.setStretch(1, 1 if mode == "middle" else 0)  # summary | settings: half each
        self.lower.setSizes([640, 360] if wide else [420, 300])

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        width = self.viewport().width()
        self._arrange("wide" if width >= WIDE else "middle" if width >= MIDDLE else "narrow")
        # stacked, the summary and settings get the height their wrapped help text needs at this width
        need = self.side.heightForWidth(width - 36) if self.mode != "wide" else 0
        self.side.setMinimumHeight(max(need, 0))

    def _on_scheme(self, _scheme: str) -> None:
        """The table's model colours and the charts are drawn in the scheme's colours: draw them again."""
        self.show_run(self.run)

    def show_run(self, run: RunInfo | None) -> None:
        """Show a run's results (None or a run without results: an explanation)."""
        self.run = run
        self.show_heading()
        s = run.summary if run is not None else {}
        self.table.setRowCount(0)
        self.charts.show_results([], None)
        self.charts.gallery.set_run(None, None)
        self.tree.clear()
        self.gain.setToolTip("")
        self._seed_config = None
        self._seeds_queued = False
        self._update_seeds_btn()
        sweep = run is not None and run.is_sweep
        for card, caption in zip((self.kept, self.gain, self.smaller, self.faster),
                                 SWEEP_CAPTIONS if sweep else RUN_CAPTIONS):
            card.caption.setText(caption)
        self.table.show()
        if sweep:
            self._show_sweep(run)
            self._fill_tree(s)
            return
        if not s or not isinstance(s.get("student"), dict) or "compression" not in s:
            why = "" if run is None else f" This run is {run.status}; it has no evaluation yet."
            self.subtitle.setText("Finish a run to compare the teacher, the distilled student and the baseline." + why)
            for c in (self.kept, self.gain, self.smaller, self.faster):
                c.set("–", "")
            self.table.hide()
            self._fill_tree(s)
            return
        t, st, b, comp = s["teacher"], s["student"], s.get("baseline") or {}, s.get("compression") or {}
        method = (s.get("distill") or {}).get("method", "")
        self.subtitle.setText(f"{s.get('device') or ''} · method {method} · test split, the same "
                              "examples for every model.")
        self.kept.set(fmt_pts(comp.get("accuracy_kept")),
                      f"student {fmt_pct(st.get('accuracy'))} vs teacher {fmt_pct(t.get('accuracy'))}")
        if s.get("kd_gain") is not None:
            stats = s.get("kd_gain_stats")
            self.gain.set(fmt_pts(s["kd_gain"]), f"vs baseline {fmt_pct(b.get('accuracy'))}: "
                          + _unbroken(gain_mod.gain_sentence(stats, s["kd_gain"], lead=False)))
            self.gain.setToolTip(gain_mod.gain_detail(stats))
            if gain_mod.verdict(stats) == "noise":
                self._offer_seeds(run)
        else:
            self.gain.set("–", "baseline disabled")
        # a student bigger or slower than its teacher is said so ("1.25× larger"), never "0.8× smaller"
        number, word = ratio_words(comp.get("params_ratio"), "smaller", "larger")
        self.smaller.caption.setText(word.capitalize() or RUN_CAPTIONS[2])
        file = " ".join(ratio_words(comp.get("size_ratio"), "smaller", "larger")).strip()
        self.smaller.set(number, f"{fmt_int(st.get('params'))} vs {fmt_int(t.get('params'))} parameters"
                         + (f"; file {file}" if file != "–" else ""))
        number, word = ratio_words(comp.get("speedup_cpu_b1"), "faster", "slower")
        self.faster.caption.setText(f"{word.capitalize()} (CPU, batch 1)" if word else RUN_CAPTIONS[3])
        self.faster.set(number, f"{_ms(st.get('latency_ms_cpu_b1'))} vs {_ms(t.get('latency_ms_cpu_b1'))}")
        table_rows = {r.get("model"): r for r in ((s.get("evaluation") or {}).get("table") or []) if isinstance(r, dict)}
        rows = [(key, {**m, "_key": key, "_table_row": table_rows.get(key)}) for key, m in model_rows(s)]
        cols = [(title, fn) for title, fn in COLUMNS if any(fn(m, t) != "–" for _, m in rows)]
        self.table.setColumnCount(len(cols) + 1)
        self.table.setHorizontalHeaderLabels(["Model"] + [c[0] for c in cols])
        self.table.setRowCount(len(rows))
        for r, (key, m) in enumerate(rows):
            name = QTableWidgetItem(NAMES.get(key, key))
            if key in COLORS:
                name.setForeground(QColor(theme.readable(COLORS[key])))
            self.table.setItem(r, 0, name)
            for c, (_, fn) in enumerate(cols, start=1):
                text = fn(m, t)
                item = QTableWidgetItem("" if text == "–" and key == "teacher" else text)
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(r, c, item)
        self._fit_table()
        details = read_json(RunDir(run.path).evaluation, default=None)
        details = details if isinstance(details, dict) else None
        self.charts.show_results(rows, details)
        self.charts.gallery.set_run(run.path, details)
        self._fill_tree(s)

    def show_heading(self) -> None:
        """The shown run's name (read again: a rename in the runs table shows here) and its start time."""
        run = self.run
        self.heading.setText(heading_html(run, theme.color("muted")) if run is not None else "")
        self.heading.setToolTip(str(run.path) if run is not None else "")

    def _fit_table(self) -> None:
        """Columns fit their contents and the table is exactly as tall as its rows (no inner scrolling)."""
        self.table.resizeColumnsToContents()
        self.table.setFixedHeight(self.table.horizontalHeader().height() + 6 +
                                  sum(self.table.rowHeight(i) for i in range(self.table.rowCount())) +
                                  self.table.horizontalScrollBar().sizeHint().height())

    def _show_sweep(self, run: RunInfo) -> None:
        """Seeds/grid: one row per point with mean ± std over seeds; the best point (on validation) marked."""
        s = run.summary
        rows = s.get("rows") or []
        keys = list(rows[0]["point"]) if rows else []
        pm = lambda a, sign=False: "–" if not a or a.get("mean") is None else (  # noqa: E731
            f"{a['mean'] * 100:{'+' if sign else ''}.2f} ± {(a.get('std') or 0) * 100:.2f}")
        best = next((r for r in rows if r.get("best")), None)
        self.subtitle.setText(f"Sweep · {run.status} · seeds {s.get('seeds')} · mean ± std over seeds; "
                              f"best = highest student {s.get('criterion', 'validation')} accuracy.")
        label = (lambda r: ", ".join(f"{k} = {r['point'][k]:g}" for k in keys) or "config")
        self.kept.set(label(best) if best else "–", "best point")
        best_gain = (best or {}).get("kd_gain") or {}
        self.gain.set(pm(best_gain, True) + " pts" if best else "–",
                      f"over {best_gain.get('n')} seeds: " + _unbroken(
                          gain_mod.gain_sentence(best.get("kd_gain_stats"), best_gain.get("mean"), lead=False))
                      if best and best_gain.get("mean") is not None else "KD gain at the best point")
        self.gain.setToolTip(gain_mod.gain_detail(gain_mod.usable((best or {}).get("kd_gain_stats"))))
        self.smaller.set(pm((best or {}).get("student")) + " %" if best else "–", "student test accuracy")
        self.faster.set(str(len(s.get("runs") or [])), "runs in this sweep")
        head = keys + ["Seeds", "Student %", "Baseline %", "KD gain (pts)", "Teacher %", "Student val %", "Best"]
        self.table.setColumnCount(len(head))
        self.table.setHorizontalHeaderLabels(head)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            cells = [f"{row['point'][k]:g}" for k in keys] + [
                str(row.get("completed", "")), pm(row.get("student")), pm(row.get("baseline")),
                pm(row.get("kd_gain"), True), pm(row.get("teacher")), pm(row.get("student_val")),
                "best" if row.get("best") else ""]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if head[c] == "KD gain (pts)" and (row.get("kd_gain") or {}).get("mean") is not None:
                    item.setToolTip(gain_mod.gain_sentence(row.get("kd_gain_stats"), row["kd_gain"]["mean"]))
                self.table.setItem(r, c, item)
        self._fit_table()
        bars = [(label(row), {"accuracy": (row.get("student") or {}).get("mean")}) for row in rows]
        self.charts.show_results(bars, None)

    # ---- "Run 3 seeds" --------------------------------------------------------------------------------
    def _offer_seeds(self, run: RunInfo) -> None:
        """A gain within noise: offer the run's own config again over three seeds (when its config reads)."""
        try:
            cfg = config_mod.load(RunDir(run.path).config)
        except config_mod.ConfigError:
            return
        cfg.run.seeds, cfg.run.sweep = [cfg.seed + i for i in range(3)], {}
        self._seed_config = cfg
        self._update_seeds_btn()

    def _update_seeds_btn(self) -> None:
        """Run 3 seeds when nothing runs; during a run the same button queues them (once per shown run)."""
        self.seeds_btn.setVisible(self._seed_config is not None and self.run_ctl is not None)
        running = self.run_ctl is not None and self.run_ctl.running
        self.seeds_btn.setText("3 seeds queued" if self._seeds_queued else
                               "Queue 3 seeds" if running else "Run 3 seeds")
        self.seeds_btn.setEnabled(self.run_ctl is not None and not self._seeds_queued)
        if self._seed_config is not None:
            seeds = self._seed_config.run.seeds
            self.seeds_btn.setToolTip(
                f"Queued: this run's config with run.seeds = {seeds} starts when the runs before it have ended."
                if self._seeds_queued else
                f"A run is going: queue this run's config with run.seeds = {seeds}; it starts when the runs before "
                "it have ended." if running else
                f"Start this run's config again with run.seeds = {seeds}: the paired t-test over three seeds tells "
                "whether distillation helps.")

    def _run_seeds(self) -> None:
        if self._seed_config is None or self.run_ctl is None:
            return
        if self.run_ctl.running:  # one run at a time: the seeds wait in the queue, as Start's "Queue" does
            self._seeds_queued = True
            self.seeds_queued.emit(self._seed_config.copy())
            self._update_seeds_btn()
        elif self.run_ctl.start(config=self._seed_config.copy()):
            self.seeds_started.emit()

    def _fill_tree(self, summary: dict) -> None:
        def add(parent, key, value):
            node = QTreeWidgetItem([str(key), "" if isinstance(value, (dict, list)) else _short(value)])
            if isinstance(value, dict):
                for k, v in value.items():
                    add(node, k, v)
            elif isinstance(value, list):
                for i, v in enumerate(value):
                    add(node, i, v)
            parent.addChild(node) if parent is not None else self.tree.addTopLevelItem(node)
        for k, v in (summary or {}).items():
            add(None, k, v)


def _unbroken(text: str) -> str:
    """An interval ('+0.0…+1.9') kept on one line when a card's words wrap (word joiners around the ellipsis)."""
    return text.replace("…", "\u2060…\u2060")


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
