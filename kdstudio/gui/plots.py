"""Live pyqtgraph plots of one run (every loss term, accuracy, learning rate) or an overlay of several runs.

Curves are updated with `setData` on downsampled, clip-to-view items, a few times a second during a run (the
Train page's redraw timer; the three plots are painted in separate event-loop turns). Step curves are smoothed with TensorBoard's debiased EMA (the slider); the raw values stay faint
behind them. Any loss term a method reports gets its own curve, so new methods need no GUI change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QSlider, QSplitter,
                               QVBoxLayout, QWidget)

from . import theme
from .series import RunSeries

pg.setConfigOptions(antialias=True, background=theme.color("surface"), foreground=theme.color("text_body"))

# A repaint of one plot costs ~5-15 ms on a 2-core machine during a run; painting the three in one event-loop turn
# stalled the window for 50+ ms, so live updates paint them this far apart.
STAGGER_MS = 80

TERM_COLORS = {"total": "#1a56b8", "kd": "#e8710a", "ce": "#188038", "teacher_ce": "#7f7f7f"}
STAGE_COLORS = {"teacher": "#8e44ad", "distill": "#1a56b8", "baseline": "#a0522d", "finetune": "#00897b"}
PALETTE = ["#1a56b8", "#e8710a", "#188038", "#d93025", "#8e44ad", "#00897b", "#c2185b", "#5f6368", "#f9ab00",
           "#3949ab"]
STAGE_NAMES = {"teacher": "teacher (training)", "distill": "student (KD)", "baseline": "baseline (from scratch)"}
STAGE_LOSS_NAMES = {"teacher": "teacher training", "baseline": "baseline"}
TERM_NAMES = {"total": "total", "kd": "KD term", "ce": "student CE", "teacher_ce": "teacher CE (reference)"}


def _color(name: str, table: dict) -> str:
    if name in table:
        return table[name]
    return PALETTE[sum(map(ord, name)) % len(PALETTE)]


def _pen(color: str, style=Qt.SolidLine, width: float = 2.0, alpha: int = 255) -> QPen:
    c = QColor(color)
    c.setAlpha(alpha)
    pen = pg.mkPen(c, width=width)
    pen.setStyle(style)
    return pen


# Which multiples of a decade get a label on a log axis, by pixels per decade (8 pt labels need ~13 px).
LOG_LABELS = ((300, {1, 2, 3, 4, 5, 6, 7, 8, 9}), (120, {1, 2, 3, 5}), (50, {1, 2, 5}), (30, {1, 3}), (0, {1}))


class GridAxis(pg.AxisItem):
    """An axis whose grid lines are opaque colours pre-blended onto the plot background, drawn under the curves.

    Qt's raster engine draws pyqtgraph's translucent grid lines about five times slower than opaque ones (~20 ms
    per plot per repaint here, the main cause of the window's event-loop stalls during a run); blending the colour
    ourselves gives the same look at the opaque cost. PlotPanel puts these axes under the view box.
    """

    def __init__(self, orientation: str, **kwargs):
        super().__init__(orientation, **kwargs)
        self._pens: dict[tuple, QPen] = {}

    def logTickValues(self, minVal, maxVal, size, stdTicks):
        """pyqtgraph's log ticks; remembers pixels per decade so the labels can thin themselves out."""
        self._px_per_decade = size / max(maxVal - minVal, 1e-12)
        return super().logTickValues(minVal, maxVal, size, stdTicks)

    def logTickStrings(self, values, scale, spacing):
        """Plain numbers ("0.05", "2") on a log axis, labelling only as many multiples as fit without overlap."""
        ppd = getattr(self, "_px_per_decade", 0.0)
        shown = next(m for limit, m in LOG_LABELS if ppd >= limit)
        out = []
        for v in values:
            value = 10 ** float(v) * scale
            multiple = round(value / 10 ** math.floor(float(v) + 1e-9))
            out.append(f"{value:.3g}" if multiple in shown else "")
        return out

    def generateDrawSpecs(self, p):
        """pyqtgraph's draw specs with every translucent tick pen replaced by its opaque equivalent."""
        specs = super().generateDrawSpecs(p)
        if specs is None or self.grid is False:
            return specs
        axis, ticks, texts = specs
        return axis, [(self._opaque(pen), a, b) for pen, a, b in ticks], texts

    def _opaque(self, pen: QPen) -> QPen:
        c = pen.color()
        if c.alpha() == 255:
            return pen
        key = (c.rgb(), c.alpha(), pen.widthF())
        if key not in self._pens:
            a, bg = c.alphaF(), theme.qcolor("surface")  # the plot's background (theme.restyle_plot clears the cache)
            blended = QColor(*(round(v * a + b * (1 - a)) for v, b in ((c.red(), bg.red()), (c.green(), bg.green()),
                                                                        (c.blue(), bg.blue()))))
            self._pens[key] = pg.mkPen(blended, width=pen.widthF())
        return self._pens[key]


@dataclass
class Spec:
    """One curve to draw: where, what data, how it looks."""

    key: tuple
    plot: str          # "loss" | "acc" | "lr"
    curve: object      # series.Curve
    pen: QPen
    name: str | None   # legend entry (None = no entry)
    smooth: bool = False
    symbol: str | None = None
    scale: float = 1.0


class PlotPanel(QWidget):
    """Three plots (loss, validation accuracy, learning rate) with smoothing, auto-range and save-as-PNG."""

    saved = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.series: list[RunSeries] = []
        self._items: dict[tuple, pg.PlotDataItem] = {}
        self._drawn: dict[tuple, tuple] = {}
        self._ref_line: pg.InfiniteLine | None = None

        self.smoothing = QSlider(Qt.Horizontal)
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(50)
        self.smoothing.setMinimumWidth(60)
        self.smoothing.setMaximumWidth(140)
        self.smoothing.setToolTip("Exponential moving average of the step curves (TensorBoard's), weighted per "
                                  "1/20 epoch: points logged an epoch apart are epoch means already and stay put")
        self.smoothing_label = QLabel()
        self.smoothing_label.setFixedWidth(34)
        self.epoch_means = QCheckBox("Epoch means")
        self.epoch_means.setChecked(True)
        self.log_y = QCheckBox("Log loss axis")
        self.log_y.setToolTip("Loss terms differ by orders of magnitude (the KD term is scaled by T²)")
        self.auto_btn = QPushButton("Auto-range")
        self.save_btn = QPushButton("Save PNG…")
        bar = QHBoxLayout()
        self.legends = QCheckBox("Legends")
        self.legends.setChecked(True)
        self.legends.setToolTip("Show the plot legends (drag a legend to move it off the curves)")
        for w in (QLabel("Smoothing"), self.smoothing, self.smoothing_label, self.epoch_means, self.log_y,
                  self.legends):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.auto_btn)
        bar.addWidget(self.save_btn)

        self.plots = {name: pg.PlotWidget(axisItems={"left": GridAxis("left"), "bottom": GridAxis("bottom")})
                      for name in ("loss", "acc", "lr")}
        titles = {"loss": ("Loss", "loss"), "acc": ("Validation accuracy", "%"), "lr": ("Learning rate", "lr")}
        for name, w in self.plots.items():
            item = w.getPlotItem()
            item.setTitle(titles[name][0], size="10pt")
            item.setLabel("bottom", "epoch")
            item.setLabel("left", titles[name][1])
            item.showGrid(x=True, y=True, alpha=0.15)
            for side in ("left", "bottom"):
                item.getAxis(side).setZValue(-200)  # under the view box (-100): grid lines never cover a curve
            item.getAxis("left").enableAutoSIPrefix(False)  # "0.005", not "5" with "(x0.001)" in the label
            item.setDownsampling(auto=True, mode="peak")
            item.setClipToView(True)
            # A mostly opaque box keeps the 8 pt labels readable over curves and grid; the user can drag a legend
            # aside or hide them all ("Legends").
            legend = item.addLegend(offset=(-8, -8) if name == "acc" else (-8, 8), labelTextSize="8pt",
                                    labelTextColor=theme.color("text"), brush=pg.mkBrush(theme.qcolor("legend_bg")),
                                    pen=pg.mkPen(theme.color("input_border")))
            legend.setColumnCount(2 if name == "loss" else 1)
            w.setMinimumHeight(150)
        self.plots["acc"].getPlotItem().getViewBox().setLimits(yMin=-5, yMax=105)

        lower = QSplitter(Qt.Horizontal)
        lower.addWidget(self.plots["acc"])
        lower.addWidget(self.plots["lr"])
        lower.setSizes([600, 400])
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.plots["loss"])
        split.addWidget(lower)
        split.setSizes([360, 240])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(split, 1)

        self._stagger = []
        for i, name in enumerate(("acc", "lr"), start=1):
            timer = QTimer(self)
            timer.setSingleShot(True)
            timer.setInterval(i * STAGGER_MS)
            timer.timeout.connect(lambda name=name: self.refresh(name))
            self._stagger.append(timer)

        self.smoothing.valueChanged.connect(self._on_style_changed)
        self.epoch_means.toggled.connect(self._on_style_changed)
        self.log_y.toggled.connect(lambda on: self.plots["loss"].getPlotItem().setLogMode(y=on))
        self.auto_btn.clicked.connect(self.auto_range)
        self.save_btn.clicked.connect(self._ask_save)
        self.legends.toggled.connect(lambda on: [w.getPlotItem().legend.setVisible(on) for w in self.plots.values()])
        self._on_style_changed()
        self.log_y.setChecked(True)

    # ---- public ---------------------------------------------------------------------------------------
    @property
    def weight(self) -> float:
        """The EMA smoothing weight in [0, 0.99]."""
        return self.smoothing.value() / 100.0

    def show_series(self, series: list[RunSeries]) -> None:
        """Show one run (every curve) or several (overlay of their headline curves); redraws from scratch."""
        self.series = list(series)
        self.clear()
        self.refresh()
        self.auto_range()

    def clear(self) -> None:
        """Remove every curve."""
        for key, item in self._items.items():
            self.plots[key[0]].getPlotItem().removeItem(item)
        self._items.clear()
        self._drawn.clear()
        if self._ref_line is not None:
            self.plots["acc"].getPlotItem().removeItem(self._ref_line)
            self._ref_line = None
        for w in self.plots.values():
            w.getPlotItem().legend.clear()

    def refresh(self, plot: str | None = None) -> None:
        """Bring the curves up to date with their series (only changed curves are touched); `plot` limits it to one."""
        changed: set[str] = set()
        for spec in self._specs():
            if len(spec.curve) == 0 or plot not in (None, spec.plot):
                continue
            item = self._items.get(spec.key)
            if item is None:
                item = pg.PlotDataItem(pen=spec.pen, name=spec.name, symbol=spec.symbol,
                                       symbolSize=5, symbolBrush=spec.pen.color(), symbolPen=None)
                if spec.symbol:
                    item.setPen(None)
                item.setDownsampling(auto=True, method="peak")
                item.setClipToView(True)
                self.plots[spec.plot].getPlotItem().addItem(item)
                self._items[spec.key] = item
            state = (len(spec.curve), self.weight if spec.smooth else None)
            if self._drawn.get(spec.key) != state:
                y = spec.curve.smoothed(self.weight) if spec.smooth else spec.curve.y
                if spec.scale != 1.0:
                    y = [v * spec.scale for v in y]
                item.setData(spec.curve.x, y)
                self._drawn[spec.key] = state
                changed.add(spec.plot)
        if plot in (None, "acc"):
            self._update_reference()
        for name in changed:
            # pyqtgraph defers auto-range to paint time, and the new range then asks for a second paint;
            # settling it now makes one paint per update.
            self.plots[name].getPlotItem().getViewBox().prepareForPaint()

    def refresh_staggered(self) -> None:
        """Refresh the loss plot now and the other two STAGGER_MS apart, so no event-loop turn repaints all three."""
        self.refresh("loss")
        for timer in self._stagger:
            if not timer.isActive():
                timer.start()

    def auto_range(self) -> None:
        """Fit every plot to its data again (after mouse zooming)."""
        for w in self.plots.values():
            w.getPlotItem().enableAutoRange()

    def save_png(self, path: str) -> bool:
        """Save the three plots as one PNG; True on success."""
        ok = self.grab().save(str(path), "PNG")
        if ok:
            self.saved.emit(str(path))
        return ok

    def curve_count(self) -> int:
        """Number of curves drawn with data (for tests and the status line)."""
        return sum(1 for i in self._items.values() if i.xData is not None and len(i.xData))

    # ---- internals ------------------------------------------------------------------------------------
    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save plots as PNG", "kdstudio-plots.png", "PNG image (*.png)")
        if path:
            self.save_png(path if path.lower().endswith(".png") else path + ".png")

    def _on_style_changed(self, *_) -> None:
        self.smoothing_label.setText(f"{self.weight:.2f}")
        keep_symbols = self.epoch_means.isChecked()
        for key in [k for k in self._items if k[-1] == "epoch" and not keep_symbols]:
            self.plots[key[0]].getPlotItem().removeItem(self._items.pop(key))
            self._drawn.pop(key, None)
        self.refresh()

    def _specs(self) -> list[Spec]:
        if len(self.series) == 1:
            return self._single_specs(self.series[0])
        return self._overlay_specs()

    def _single_specs(self, s: RunSeries) -> list[Spec]:
        out: list[Spec] = []
        smooth = self.weight > 0
        for stage, term in s.loss_keys():
            if stage != "distill" and term == "total" and (stage, "ce") in s.step:
                continue  # plain CE stages: total is ce
            if stage == "distill":
                color = _color(term, TERM_COLORS)
                style = Qt.DashLine if term == "teacher_ce" else Qt.SolidLine
                name = TERM_NAMES.get(term, term)
            else:
                color = _color(stage, STAGE_COLORS)
                style = Qt.DashDotLine if stage == "teacher" else Qt.DotLine
                name = f"{STAGE_LOSS_NAMES.get(stage, stage)} {'CE' if term == 'ce' else term}"
            curve = s.step[(stage, term)]
            if smooth:
                out.append(Spec(("loss", stage, term, "raw"), "loss", curve, _pen(color, style, 1, 50), None))
            out.append(Spec(("loss", stage, term, "step"), "loss", curve, _pen(color, style), name, smooth))
            if self.epoch_means.isChecked() and (stage, term) in s.epoch:
                out.append(Spec(("loss", stage, term, "epoch"), "loss", s.epoch[(stage, term)],
                                _pen(color), None, symbol="o"))
        for stage, curve in s.val_acc.items():
            color = _color(stage, STAGE_COLORS)
            style = Qt.DashDotLine if stage == "teacher" else Qt.SolidLine
            out.append(Spec(("acc", stage, "val_acc", "line"), "acc", curve, _pen(color, style),
                            STAGE_NAMES.get(stage, stage), scale=100.0, symbol=None))
        for stage, curve in s.lr.items():
            # distill and baseline share a schedule: the baseline dashed on top keeps both visible
            style = {"teacher": Qt.DashDotLine, "baseline": Qt.DashLine}.get(stage, Qt.SolidLine)
            out.append(Spec(("lr", stage, "lr", "line"), "lr", curve, _pen(_color(stage, STAGE_COLORS), style),
                            stage))
        return out

    def _overlay_specs(self) -> list[Spec]:
        out: list[Spec] = []
        for i, s in enumerate(self.series):
            color = PALETTE[i % len(PALETTE)]
            label = s.label or f"run {i + 1}"
            total = s.step.get(("distill", "total"))
            if total is not None:
                out.append(Spec(("loss", i, "total", "step"), "loss", total, _pen(color), f"{label} total",
                                self.weight > 0))
            for stage, style, what in (("distill", Qt.SolidLine, "student"), ("baseline", Qt.DashLine, "baseline")):
                if stage in s.val_acc:
                    out.append(Spec(("acc", i, stage, "line"), "acc", s.val_acc[stage], _pen(color, style),
                                    f"{label} {what}", scale=100.0))
            if "distill" in s.lr:
                out.append(Spec(("lr", i, "lr", "line"), "lr", s.lr["distill"], _pen(color), label))
        return out

    def _update_reference(self) -> None:
        ref = self.series[0].teacher_reference() if len(self.series) == 1 else None
        item = self.plots["acc"].getPlotItem()
        if ref is None:
            if self._ref_line is not None:
                item.removeItem(self._ref_line)
                self._ref_line = None
            return
        if self._ref_line is None:
            self._ref_line = pg.InfiniteLine(angle=0, movable=False, pen=_pen("#8e44ad", Qt.DashLine, 1.5),
                                             label="teacher {value:.1f}%",
                                             labelOpts={"position": 0.02, "color": theme.readable("#8e44ad"),
                                                        "fill": theme.color("legend_bg"), "anchors": [(0, 0), (0, 0)]})
            item.addItem(self._ref_line)
        self._ref_line.setValue(ref * 100.0)
