"""Live pyqtgraph plots of one run (every loss term, accuracy, learning rate) or an overlay of several runs (one
loss term that they all report, chosen in the loss plot's header, and their accuracy and learning rate).

Curves are updated with `setData` (long ones downsampled and clipped to the view), a few times a second during a run (the
Train page's redraw timer; the three plots are painted in separate event-loop turns). Step curves are smoothed
with TensorBoard's debiased EMA (the slider); the raw values stay faint behind them. Any loss term a method
reports gets its own curve and colour (plot_specs.py, palette.py), so new methods need no GUI change. Titles and
legends sit above the plots (plot_legend.py), never over the curves.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QSlider,
                               QSplitter, QVBoxLayout, QWidget)

from . import priority, theme
from .palette import STAGE_COLORS
from .plot_legend import PlotBox
from .plot_specs import Spec, comparable_terms, default_term, overlay_specs, pen, single_specs, term_name
from .series import RunSeries

pg.setConfigOptions(antialias=True, background=theme.color("surface"), foreground=theme.color("text_body"))

# Curves longer than this many points are downsampled to the plot's width and clipped to its view (_fit_detail).
LONG_CURVE = 2000
# A repaint of one plot costs ~5-15 ms on a 2-core machine during a run; painting the three in one event-loop turn
# stalled the window for 50+ ms, so live updates paint them this far apart.
STAGGER_MS = 80

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


class LivePlotWidget(pg.PlotWidget):
    """A PlotWidget whose paint, during a run, is not sliced up by the training thread (priority.hold)."""

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        with priority.hold():
            super().paintEvent(event)


class PlotPanel(QWidget):
    """Three plots (loss, validation accuracy, learning rate) with smoothing, auto-range and save-as-PNG."""

    saved = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.series: list[RunSeries] = []
        self.labels: list[str] = []   # one display name per series (its caller's, else the series' own)
        self._items: dict[tuple, pg.PlotDataItem] = {}
        self._drawn: dict[tuple, tuple] = {}
        self._ref_line: pg.InfiniteLine | None = None
        self._pinned: set[str] = set()   # plots held at a range around their first points (_fit_first_points)

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
        self.legends.setToolTip("Show the curves' names above each plot")
        self.compare_label = QLabel("<b>Loss:</b>")
        self.compare = QComboBox()
        self.compare.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.compare.setToolTip("The loss term drawn for every overlaid run: runs of different methods share "
                                "only some terms, and their totals add up different things")
        for w in (QLabel("Smoothing"), self.smoothing, self.smoothing_label, self.epoch_means, self.log_y,
                  self.legends):
            bar.addWidget(w)
        self.compare_label.hide()
        self.compare.hide()
        bar.addStretch(1)
        bar.addWidget(self.auto_btn)
        bar.addWidget(self.save_btn)

        self.plots = {name: LivePlotWidget(axisItems={"left": GridAxis("left"), "bottom": GridAxis("bottom")})
                      for name in ("loss", "acc", "lr")}
        titles = {"loss": ("Loss", "loss"), "acc": ("Validation accuracy", "%"), "lr": ("Learning rate", "lr")}
        waiting = {"loss": "Loss: waiting for the first step…",
                   "acc": "Validation accuracy: measured at the end of each epoch, waiting for the first…",
                   "lr": "Learning rate: waiting for the first step…"}
        self.boxes: dict[str, PlotBox] = {}
        for name, w in self.plots.items():
            item = w.getPlotItem()
            item.setLabel("bottom", "epoch")
            item.setLabel("left", titles[name][1])
            item.showGrid(x=True, y=True, alpha=0.15)
            for side in ("left", "bottom"):
                item.getAxis(side).setZValue(-200)  # under the view box (-100): grid lines never cover a curve
            item.getAxis("left").enableAutoSIPrefix(False)  # "0.005", not "5" with "(x0.001)" in the label
            item.getViewBox().setLimits(xMin=0)  # epochs: the first points do not float in a made-up negative range
            w.setMinimumHeight(130)
            lead = [self.compare_label, self.compare] if name == "loss" else []
            self.boxes[name] = PlotBox(w, titles[name][0], waiting[name], lead)
        self.plots["acc"].getPlotItem().getViewBox().setLimits(yMin=-5, yMax=105)

        lower = QSplitter(Qt.Horizontal)
        lower.addWidget(self.boxes["acc"])
        lower.addWidget(self.boxes["lr"])
        lower.setSizes([600, 400])
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.boxes["loss"])
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
        self.legends.toggled.connect(lambda on: [b.legend.show_entries(on) for b in self.boxes.values()])
        self.compare.currentIndexChanged.connect(self._on_compare_changed)
        self._on_style_changed()
        self.log_y.setChecked(True)

    # ---- public ---------------------------------------------------------------------------------------
    @property
    def weight(self) -> float:
        """The EMA smoothing weight in [0, 0.99]."""
        return self.smoothing.value() / 100.0

    def show_series(self, series: list[RunSeries], labels: list[str] | None = None) -> None:
        """Show one run (every curve) or several (an overlay of one loss term, accuracy and lr), each named by
        `labels` (default: the series' own label, its folder name); redraws from scratch."""
        self.series = list(series)
        self.labels = [lb or s.label or f"run {i + 1}" for i, (s, lb) in
                       enumerate(zip(self.series, list(labels or []) + [""] * len(self.series)))]
        self._fill_compare()
        self.clear()
        self.auto_range()
        self.refresh()

    def clear(self) -> None:
        """Remove every curve."""
        for key, item in self._items.items():
            self.plots[key[0]].getPlotItem().removeItem(item)
        self._items.clear()
        self._drawn.clear()
        self._pinned.clear()
        if self._ref_line is not None:
            self.plots["acc"].getPlotItem().removeItem(self._ref_line)
            self._ref_line = None
        for box in self.boxes.values():
            box.legend.set_entries([])
            box.set_has_data(False)

    def refresh(self, plot: str | None = None) -> None:
        """Bring the curves up to date with their series (only changed curves are touched); `plot` limits it to one."""
        with priority.hold():
            self._refresh(plot)

    def _refresh(self, plot: str | None) -> None:
        changed: set[str] = set()
        specs = self._specs()
        for spec in specs:
            if len(spec.curve) == 0 or plot not in (None, spec.plot):
                continue
            item = self._items.get(spec.key)
            if item is None:
                item = pg.PlotDataItem(pen=spec.pen, name=spec.name, symbol=spec.symbol,
                                       symbolSize=5, symbolBrush=spec.pen.color(), symbolPen=None)
                if spec.symbol:
                    item.setPen(None)
                self.plots[spec.plot].getPlotItem().addItem(item)
                self._items[spec.key] = item
            self._fit_detail(item, len(spec.curve))
            state = (len(spec.curve), self.weight if spec.smooth else None)
            if self._drawn.get(spec.key) != state:
                y = spec.curve.smoothed(self.weight) if spec.smooth else spec.curve.y
                if spec.scale != 1.0:
                    y = [v * spec.scale for v in y]
                item.setData(spec.curve.x, y)
                if spec.symbol is None and len(y) <= 2:  # a line of one point draws nothing: a dot until two
                    item.setSymbol("o" if len(y) == 1 else None)
                self._drawn[spec.key] = state
                changed.add(spec.plot)
        if plot in (None, "acc"):
            self._update_reference()
        self._update_legends(specs, plot)
        for name in changed:
            self._fit_first_points(name)
            # pyqtgraph defers auto-range to paint time, and the new range then asks for a second paint;
            # settling it now makes one paint per update.
            self.plots[name].getPlotItem().getViewBox().prepareForPaint()

    @staticmethod
    def _fit_detail(item: pg.PlotDataItem, points: int) -> None:
        """Downsample and clip to the view only a curve long enough to need it: either rebuilds the item's display
        data and symbols at every auto-range of a growing plot (30-50 ms of CPU per epoch end, for short curves)."""
        long = points > LONG_CURVE
        if item.opts["clipToView"] != long:
            item.setDownsampling(auto=long, method="peak")
            item.setClipToView(long)

    def refresh_staggered(self) -> None:
        """Refresh the loss plot now and the other two STAGGER_MS apart, so no event-loop turn repaints all three."""
        self.refresh("loss")
        for timer in self._stagger:
            if not timer.isActive():
                timer.start()

    def auto_range(self) -> None:
        """Fit every plot to its data again (after mouse zooming)."""
        self._pinned.clear()
        for name, w in self.plots.items():
            w.getPlotItem().enableAutoRange()
            self._fit_first_points(name)

    def save_png(self, path: str) -> bool:
        """Save the three plots as one PNG; True on success."""
        ok = self.grab().save(str(path), "PNG")
        if ok:
            self.saved.emit(str(path))
        return ok

    def legend_names(self, plot: str) -> list[str]:
        """The names listed above a plot, in order (for tests)."""
        return [name for name, _, _ in self.boxes[plot].legend.entries]

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

    def _fill_compare(self) -> None:
        """The loss terms an overlay can compare: those every shown run reports; keeps the choice when it still
        applies, else starts from default_term."""
        overlay = len(self.series) > 1
        terms = comparable_terms(self.series) if overlay else []
        keep = self.compare.currentData()
        self.compare.blockSignals(True)
        self.compare.clear()
        for t in terms:
            self.compare.addItem(term_name(t), t)
        want = keep if keep in terms else default_term(self.series) if overlay else None
        if want in terms:
            self.compare.setCurrentIndex(terms.index(want))
        self.compare.blockSignals(False)
        self.compare.setVisible(overlay and bool(terms))
        self.compare_label.setVisible(overlay and bool(terms))

    def _on_compare_changed(self, _index: int) -> None:
        self.clear()
        self.refresh()
        self.plots["loss"].getPlotItem().enableAutoRange()

    def _fit_first_points(self, name: str) -> None:
        """A plot whose curves have no spread yet (one point each) gets a small range around its points: pyqtgraph
        would show ±0.5 around them (a negative learning rate, epoch −0.5). Auto-range returns with the spread."""
        xs, ys = [], []
        for key, item in self._items.items():
            x, y = item.getData() if key[0] == name else (None, None)  # display coordinates (log10 on a log axis)
            if x is not None and len(x):
                xs += [float(min(x)), float(max(x))]
                ys += [float(min(y)), float(max(y))]
        if not xs:
            return
        item = self.plots[name].getPlotItem()
        flat_x, flat_y = max(xs) <= min(xs), max(ys) <= min(ys)
        if flat_x or flat_y:
            x_range = (0.0, max(1.0, max(xs))) if flat_x else (min(xs), max(xs))
            c = ys[0]
            half = 0.5 if name == "loss" and self.log_y.isChecked() else max(abs(c) * 0.5, 1e-12)
            item.getViewBox().setRange(xRange=x_range, yRange=(c - half, c + half) if flat_y else (min(ys), max(ys)))
            self._pinned.add(name)
        elif name in self._pinned:
            self._pinned.discard(name)
            item.enableAutoRange()

    def _update_legends(self, specs: list[Spec], plot: str | None) -> None:
        """Each plot's legend entries and title, and the plot itself once it has a point (else its sentence)."""
        for name, box in self.boxes.items():
            if plot not in (None, name):
                continue
            drawn = [s for s in specs if s.plot == name and len(s.curve) and s.key in self._items]
            box.legend.set_entries([(s.name, s.pen.color().name(), s.pen.style()) for s in drawn if s.name])
            overlay = len(self.series) > 1
            if name == "loss":
                # an overlay names its term in the chooser before the legend
                box.legend.set_title("" if overlay and self.compare.count() else
                                     "Loss (no term common to these runs)" if overlay else "Loss")
            elif name == "acc":
                box.legend.set_title("Validation accuracy (━━ student, ╍╍ baseline)" if overlay
                                     else "Validation accuracy")
            box.set_has_data(bool(drawn), "None of these runs has logged this curve." if overlay else None)

    def _specs(self) -> list[Spec]:
        if len(self.series) == 1:
            return single_specs(self.series[0], self.weight, self.epoch_means.isChecked())
        return overlay_specs(self.series, self.labels, self.compare.currentData(), self.weight)

    def _update_reference(self) -> None:
        ref = self.series[0].teacher_reference() if len(self.series) == 1 else None
        item = self.plots["acc"].getPlotItem()
        if ref is None:
            if self._ref_line is not None:
                item.removeItem(self._ref_line)
                self._ref_line = None
            return
        if self._ref_line is None:
            self._ref_line = pg.InfiniteLine(angle=0, movable=False,
                                             pen=pen(STAGE_COLORS["teacher"], Qt.DashLine, 1.5),
                                             label="teacher {value:.1f}%",
                                             labelOpts={"position": 0.02,
                                                        "color": theme.readable(STAGE_COLORS["teacher"]),
                                                        "fill": theme.color("legend_bg"), "anchors": [(0, 0), (0, 0)]})
            item.addItem(self._ref_line)
        self._ref_line.setValue(ref * 100.0)
