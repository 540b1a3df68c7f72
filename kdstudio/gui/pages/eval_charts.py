"""Charts of the Evaluate page: accuracy bars, confusion matrix (counts or normalised), per-class accuracy, and
the gallery of misclassified test images (pages/gallery.py).

They read the run's summary.json and, when present, its evaluation.json (confusion matrices, per-class
accuracy); a run without the details file still gets the accuracy bars.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QTabWidget, QVBoxLayout, QWidget

from .. import theme
from ..palette import MODEL_COLORS
from .gallery import Gallery

COLORS = MODEL_COLORS  # one palette with the Train page's curves
SHORT = {"teacher": "Teacher", "student": "Student", "baseline": "Baseline"}
PERCENT_TICKS = [(v, f"{v}") for v in range(0, 101, 20)]
CELL_TEXT_PX = 28  # narrowest confusion-matrix cell that holds "0.97" (counts need 6 px less)
CELL_MIN_PX = 32   # the cells the charts ask room for (up to MAX_ROOMY_CLASSES classes), numbers with a margin
MAX_ROOMY_CLASSES = 12
# Height of everything around the confusion matrix's cells: tabs, the model row, the bottom axis and its label.
CM_FRAME_PX = 116
NAME_CHARS = 24    # class names longer than this are elided (the axis tooltip has them whole)
LEGEND_ROOM = 18  # percentage points above 100 kept free for the per-class legend
CORRECT_RGB = np.array([26, 86, 184], dtype=float)  # the app's blue
MISTAKE_RGB = np.array([217, 48, 37], dtype=float)


def fit_names(names: list[str], room_px: float, metrics: QFontMetrics) -> tuple[list[str], bool]:
    """Class names as an axis can show them: whole up to NAME_CHARS characters and `room_px` pixels each, else
    elided with "…", or the class's index where not even two characters fit; and whether any was shortened (then
    the axis's tooltip lists them whole, by index)."""
    out = []
    for i, n in enumerate(names):
        short = n if len(n) <= NAME_CHARS else n[:NAME_CHARS - 1] + "…"
        if room_px > 0 and metrics.horizontalAdvance(short) > room_px:
            short = metrics.elidedText(short, Qt.ElideRight, int(room_px))
            if len(short.rstrip("…")) < 2:
                short = str(i)
        out.append(short)
    return out, out != list(names)


def label_classes(chart: pg.PlotWidget, names: list[str], font) -> None:
    """Put the class names under a bar chart's groups (one per class at x = 0, 1, …) as whole as a group's width
    lets them be (fit_names), the whole names in the axis's tooltip when any was shortened; none past 30 classes."""
    axis, k = chart.getPlotItem().getAxis("bottom"), len(names)
    if not names or k > 30:
        axis.setTicks(None)
        axis.setToolTip("")
        return
    width = chart.getPlotItem().getViewBox().width()
    shown, cut = fit_names(names, width / k - 4 if width > 0 else 0, QFontMetrics(axis.style.get("tickFont") or font))
    axis.setTicks([[(i, n) for i, n in enumerate(shown)]])
    axis.setToolTip("\n".join(f"{i}: {n}" for i, n in enumerate(names)) if cut else "")


def _plot(title: str) -> pg.PlotWidget:
    w = pg.PlotWidget()
    item = w.getPlotItem()
    item.setTitle(title, size="10pt")
    item.setMouseEnabled(x=False, y=False)
    item.hideButtons()
    return w


def confusion_colours(cm: np.ndarray, base=(255, 255, 255)) -> tuple[np.ndarray, np.ndarray]:
    """RGB image (k, k, 3) and colour level (0..1) per cell: the diagonal from the background `base` (white) to
    blue by its value, mistakes from faint to full red relative to the largest mistake (never fainter than 30 %, so a
    single error shows on a matrix of hundreds of correct answers), empty cells the background."""
    k = cm.shape[0]
    diagonal = np.eye(k, dtype=bool)
    mistakes = ~diagonal & (cm > 0)
    level = np.zeros_like(cm, dtype=float)
    level[diagonal] = cm[diagonal] / (cm.max() or 1)
    if mistakes.any():
        level[mistakes] = 0.3 + 0.7 * cm[mistakes] / cm[mistakes].max()
    colour = np.where(diagonal[..., None], CORRECT_RGB, MISTAKE_RGB)
    base = np.asarray(base, dtype=float)
    rgb = base + (colour - base) * level[..., None]
    return rgb.astype(np.uint8), level


class EvalCharts(QTabWidget):
    """Tabs: accuracy per model, confusion matrix of one model, accuracy per class, misclassified examples."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.details: dict = {}
        self.acc = _plot("Test accuracy")
        self.addTab(self.acc, "Accuracy")
        box = QWidget()
        self.cm_model = QComboBox()
        self.cm_norm = QCheckBox("Normalised per true class")
        self.cm_norm.setChecked(True)
        self.cm_plot = _plot("")
        self.cm_plot.getPlotItem().setTitle(None)
        self.cm_key = QLabel()
        self.cm_key.setWordWrap(True)  # a narrow page wraps the key instead of widening the charts
        self.cm_key.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        self.cm_plot.getPlotItem().invertY(True)
        self.cm_plot.getPlotItem().setAspectLocked(True)
        self.cm_plot.getPlotItem().setLabel("left", "true class")
        self.cm_plot.getPlotItem().setLabel("bottom", "predicted class")
        row = QHBoxLayout()
        row.addWidget(QLabel("Model"))
        row.addWidget(self.cm_model)
        row.addWidget(self.cm_norm)
        row.addWidget(self.cm_key, 1)
        col = QVBoxLayout(box)
        col.setContentsMargins(0, 4, 0, 0)
        col.addLayout(row)
        col.addWidget(self.cm_plot, 1)
        self.cm_tab = self.addTab(box, "Confusion matrix")
        self.per_class = _plot("Accuracy per class")
        self.per_class.getPlotItem().addLegend(offset=(-8, 4), labelTextSize="8pt").setColumnCount(3)
        self.pc_tab = self.addTab(self.per_class, "Per class")
        self.gallery = Gallery()
        self.gallery_tab = self.addTab(self.gallery, "Misclassified")
        self._cm_texts: list = []
        self._classes = 0         # classes of the matrix shown (its cells ask for room)
        self._floor_height = 260  # the page's own minimum for these charts (set_floor_height)
        self._names: list[str] = []
        self._pc_names: list[str] = []
        self.per_class.getPlotItem().getViewBox().sigResized.connect(self._label_per_class)
        box_view = self.cm_plot.getPlotItem().getViewBox()
        box_view.sigResized.connect(self._fit_cell_text)
        box_view.sigRangeChanged.connect(self._fit_cell_text)
        self.cm_model.currentIndexChanged.connect(lambda _i: self._draw_confusion())
        self.cm_norm.toggled.connect(lambda _b: self._draw_confusion())

    def show_results(self, rows: list[tuple[str, dict]], details: dict | None) -> None:
        """Draw every chart for these (model, metrics) rows and the evaluation details (or None)."""
        self.details = details or {}
        self._draw_accuracy(rows)
        models = [k for k, v in (self.details.get("models") or {}).items() if isinstance(v, dict)
                  and v.get("confusion")]
        self.cm_model.blockSignals(True)
        self.cm_model.clear()
        for k in models:
            self.cm_model.addItem(SHORT.get(k, k), k)
        if "student" in models:
            self.cm_model.setCurrentIndex(models.index("student"))
        self.cm_model.blockSignals(False)
        self.setTabEnabled(self.cm_tab, bool(models))
        self.setTabEnabled(self.pc_tab, bool(models))
        self.setTabEnabled(self.gallery_tab, bool(self.details.get("models")))
        self._draw_confusion()
        self._draw_per_class()
        if models and self.currentIndex() == 0:
            self.setCurrentIndex(self.cm_tab)  # more telling than bars that repeat the table

    def _draw_accuracy(self, rows) -> None:
        item = self.acc.getPlotItem()
        item.clear()
        accs = [(k, m.get("accuracy")) for k, m in rows if isinstance(m.get("accuracy"), (int, float))]
        for i, (k, a) in enumerate(accs):
            item.addItem(pg.BarGraphItem(x=[i], height=[a * 100], width=0.6, brush=COLORS.get(k, "#5f6368")))
            inside = a > 0.15  # the value sits inside the top of the bar; above a short one
            label = pg.TextItem(f"{a * 100:.1f}%", anchor=(0.5, -0.3) if inside else (0.5, 1.2),
                                color="#ffffff" if inside else theme.color("text"))
            label.setPos(i, a * 100)
            item.addItem(label)
        item.getAxis("bottom").setTicks([[(i, SHORT.get(k, k)) for i, (k, _) in enumerate(accs)]])
        # The whole 0-100 % scale: a cut-off axis made a half-point difference look large (the table has
        # the exact figures).
        item.getAxis("left").setTicks([PERCENT_TICKS])
        item.setYRange(0, 100, padding=0)
        item.setXRange(-0.6, len(accs) - 0.4, padding=0)

    def confusion(self) -> np.ndarray | None:
        """The confusion matrix shown (normalised per row when ticked), or None."""
        key = self.cm_model.currentData()
        m = (self.details.get("models") or {}).get(key) if key else None
        if not m or not m.get("confusion"):
            return None
        cm = np.asarray(m["confusion"], dtype=float)
        if self.cm_norm.isChecked():
            cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        return cm

    def _draw_confusion(self) -> None:
        item = self.cm_plot.getPlotItem()
        item.clear()
        self._cm_texts = []
        cm = self.confusion()
        if cm is None:
            return
        k = cm.shape[0]
        bg = theme.qcolor("surface")
        rgb, level = confusion_colours(cm, (bg.red(), bg.green(), bg.blue()))
        img = pg.ImageItem(rgb.transpose(1, 0, 2))  # ImageItem is x-major
        img.setLevels((0, 255))
        item.addItem(img)
        if k <= 20:
            norm = self.cm_norm.isChecked()
            for i in range(k):
                for j in range(k):
                    v = cm[i, j]
                    if v == 0:
                        continue
                    text = f"{v:.2f}" if norm else f"{int(v)}"
                    t = pg.TextItem(text, anchor=(0.5, 0.5), color=self._cell_text(level[i, j]))
                    t.setPos(j + 0.5, i + 0.5)
                    item.addItem(t)
                    self._cm_texts.append(t)
        names = [str(n) for n in self.details.get("class_names") or range(k)]
        self._names = names if k <= 30 else []
        self._shown_names = None
        if k > 30:
            for axis in ("bottom", "left"):
                item.getAxis(axis).setTicks(None)
        item.setXRange(0, k, padding=0.02)
        item.setYRange(0, k, padding=0.02)
        self._set_classes(k)
        self._fit_cell_text()
        what = "share of each true class" if self.cm_norm.isChecked() else "counts"
        self.cm_key.setText(f"{what} · {theme.span('■ correct', 'accent')} "
                            f"{theme.span('■ mistakes', 'error')} (darker = more)")

    def set_floor_height(self, px: int) -> None:
        """The least height the page wants for the charts; they ask for more when the matrix needs it."""
        self._floor_height = px
        self._set_classes(self._classes)

    def _set_classes(self, k: int) -> None:
        """Ask for the height that gives each confusion-matrix cell CELL_MIN_PX (up to MAX_ROOMY_CLASSES
        classes; more than that get what the page gives, their numbers hide when the cells get small)."""
        self._classes = k
        need = CM_FRAME_PX + CELL_MIN_PX * min(k, MAX_ROOMY_CLASSES) if k else 0
        self.setMinimumHeight(max(self._floor_height, need))

    @staticmethod
    def _cell_text(level: float) -> str:
        """White on a strong cell; on a faint one the text colour (on the dark scheme every cell is dark enough)."""
        return "#ffffff" if level > 0.55 or theme.is_dark() else theme.color("text")

    def cell_pixels(self) -> float:
        """Width of one confusion-matrix cell on screen, in pixels (0 before the plot has a size)."""
        px = self.cm_plot.getPlotItem().getViewBox().viewPixelSize()[0]
        return 1.0 / px if px > 0 else 0.0

    def _fit_cell_text(self, *_) -> None:
        """Numbers in the cells only while a cell can hold one (on a small plot they covered each other); class
        names as whole as the cells let them be."""
        cell = self.cell_pixels()
        if self._cm_texts:
            fits = cell >= (CELL_TEXT_PX if self.cm_norm.isChecked() else CELL_TEXT_PX - 6)
            for t in self._cm_texts:
                t.setVisible(fits)
        if self._names:
            self._label_axes(cell)

    def _label_axes(self, cell: float) -> None:
        """The true classes whole (to NAME_CHARS) on the left; the predicted ones below as wide as a cell, or,
        when most would be cut to a few letters, their numbers (and the numbers before the names on the left)."""
        item = self.cm_plot.getPlotItem()
        bottom, left = item.getAxis("bottom"), item.getAxis("left")
        metrics = QFontMetrics(bottom.style.get("tickFont") or self.font())
        names = self._names
        below, cut = fit_names(names, cell - 4, metrics)
        numbered = cut and sum(len(b.rstrip("…")) < 4 for b in below) > len(names) / 2
        if numbered:
            below = [str(i) for i in range(len(names))]
        beside, cut_left = fit_names([f"{i} {n}" if numbered else n for i, n in enumerate(names)], 0, metrics)
        shown = (tuple(below), tuple(beside))
        if shown == self._shown_names:
            return
        self._shown_names = shown
        bottom.setTicks([[(i + 0.5, b) for i, b in enumerate(below)]])
        left.setTicks([[(i + 0.5, b) for i, b in enumerate(beside)]])
        tip = "\n".join(f"{i}: {n}" for i, n in enumerate(names)) if (cut or cut_left) else ""
        bottom.setToolTip(tip)
        left.setToolTip(tip)

    def _draw_per_class(self) -> None:
        item = self.per_class.getPlotItem()
        item.clear()
        models = [(k, v) for k, v in (self.details.get("models") or {}).items()
                  if isinstance(v, dict) and v.get("per_class")]
        if not models:
            return
        k = len(models[0][1]["per_class"])
        width = 0.8 / len(models)
        for s, (key, m) in enumerate(models):
            acc = [100 * (c.get("accuracy") or 0) for c in m["per_class"]]
            xs = np.arange(k) - 0.4 + width * (s + 0.5)
            item.addItem(pg.BarGraphItem(x=xs, height=acc, width=width, brush=COLORS.get(key, "#5f6368"),
                                         pen=None, name=SHORT.get(key, key)))
        self._pc_names = [str(c.get("name", i)) for i, c in enumerate(models[0][1]["per_class"])]
        self._label_per_class()
        item.getAxis("left").setTicks([PERCENT_TICKS])
        item.setYRange(0, 100 + LEGEND_ROOM, padding=0)  # the room above 100 % holds the legend, not data
        item.setXRange(-0.6, k - 0.4, padding=0)

    def _label_per_class(self, *_) -> None:
        """The class names under the bars, as whole as a bar group's width lets them be."""
        label_classes(self.per_class, self._pc_names, self.font())
