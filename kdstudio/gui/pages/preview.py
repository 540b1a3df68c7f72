"""Data preview for the Data page: a mosaic of training samples per class and the class balance per split."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QHeaderView, QLabel, QTreeWidget, QTreeWidgetItem,
                               QVBoxLayout)

from .. import theme
from .eval_charts import label_classes

SPLIT_COLORS = {"train": "#1a56b8", "val": "#f9ab00", "test": "#188038"}
TILE_PX = 32  # each sample is drawn about this big


def mosaic_pixmap(mosaic: np.ndarray, names: list[str]) -> QPixmap:
    """A uint8 H×W×3 array (one row per class) as a pixmap scaled up crisply, class names drawn on the left."""
    arr = np.ascontiguousarray(mosaic)
    h, w, _ = arr.shape
    rows = max(len(names), 1)
    img = QImage(arr.data, w, h, 3 * w, QImage.Format_RGB888).copy()
    factor = max(1, TILE_PX // max(1, h // rows))
    big = img.scaled(w * factor, h * factor, Qt.IgnoreAspectRatio, Qt.FastTransformation)
    margin = 8 + 7 * max((len(n) for n in names), default=1)
    pm = QPixmap(big.width() + margin, big.height())
    pm.fill(theme.qcolor("surface"))
    p = QPainter(pm)
    p.drawImage(margin, 0, big)
    p.setPen(theme.qcolor("muted"))
    row_h = big.height() / rows
    for i, n in enumerate(names):
        p.drawText(0, int(i * row_h), margin - 6, int(row_h), Qt.AlignRight | Qt.AlignVCenter, n)
    p.end()
    return pm


class DataPreview(QGroupBox):
    """Samples of each class, and how many examples each class has in train / val / test."""

    def __init__(self, parent=None):
        super().__init__("Preview", parent)
        self.image = QLabel("The preview appears once the data has been read.")
        self.image.setObjectName("help")
        self.image.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.chart = pg.PlotWidget()
        self.chart.setMinimumHeight(200)
        self.chart.setMaximumHeight(340)
        self.chart.getPlotItem().setTitle("Samples per class", size="9pt")
        self._shown: dict | None = None
        self._class_names: list[str] = []
        self.chart.getPlotItem().getViewBox().sigResized.connect(lambda _vb: self._fit_class_names())
        theme.notifier.changed.connect(self._on_scheme)
        self.chart.getPlotItem().setMouseEnabled(x=False, y=False)
        self.chart.getPlotItem().hideButtons()
        self.legend = self.chart.getPlotItem().addLegend(offset=(-6, 6), labelTextSize="8pt")
        # Which data path the run will take (resident or streamed), why, and the decoded size.
        self.path_note = QLabel("")
        self.path_note.setObjectName("help")
        self.path_note.setWordWrap(True)
        self.fill_note = QLabel("")  # the running run's teacher-cache fill (DataPage._show_fill)
        self.fill_note.setWordWrap(True)
        self.fill_note.hide()
        row = QHBoxLayout(self)
        left = QVBoxLayout()
        left.addWidget(self.path_note)
        left.addWidget(self.fill_note)
        samples = QHBoxLayout()
        samples.addWidget(self.image)
        samples.addStretch(1)
        left.addLayout(samples)
        left.addStretch(1)
        row.addLayout(left, 1)
        row.addWidget(self.chart, 1)

    def _on_scheme(self, _scheme: str) -> None:
        if self._shown is not None:
            self.show_preview(self._shown)  # the mosaic's margin is painted in the scheme's colours

    def show_preview(self, preview: dict | None) -> None:
        """Draw the mosaic and the class balance (None: explain that there is no preview)."""
        self._shown = preview
        item = self.chart.getPlotItem()
        item.clear()
        self.legend.clear()
        if not preview:
            self._class_names = []
            self._fit_class_names()
            self.path_note.setText("")
            self.image.setText("No preview for this data source.")
            return
        path = str(preview.get("data_path") or "")
        inputs = str(preview.get("inputs") or "")
        self.path_note.setText("\n".join(line for line in (f"Data path — {path}." if path else "",
                                                              inputs[:1].upper() + inputs[1:] + "." if inputs else "")
                                          if line))
        names = [str(n) for n in preview.get("class_names", [])]
        mosaic = preview.get("mosaic")
        if mosaic is not None:
            rows = int(preview.get("shown_classes", len(names)))
            self.image.setPixmap(mosaic_pixmap(mosaic, names[:rows]))
        else:
            self.image.setText("Inputs are feature vectors: no images to show.")
        counts = preview.get("counts") or {}
        k = len(names)
        width = 0.8 / max(len(counts), 1)
        order = sorted(counts, key=lambda n: ("train", "val", "test").index(n) if n in SPLIT_COLORS else 9)
        for s, split in enumerate(order):
            values = counts[split]
            xs = np.arange(k) - 0.4 + width * (s + 0.5)
            bar = pg.BarGraphItem(x=xs, height=values, width=width, brush=SPLIT_COLORS.get(split, "#5f6368"),
                                  pen=None, name=split)
            item.addItem(bar)
        top = max((max(v) for v in counts.values() if v), default=1)
        item.setYRange(0, top * 1.45, padding=0)  # headroom above the tallest bar for the legend
        item.setXRange(-0.6, k - 0.4, padding=0)
        self._class_names = names
        self._fit_class_names()

    def _fit_class_names(self) -> None:
        """The class names under the bar groups, as whole as a group's width lets them be (whole in the tooltip)."""
        label_classes(self.chart, self._class_names, self.font())


class LayerTable(QGroupBox):
    """The model's layers from the zoo's summary: name, type, output shape, parameters."""

    def __init__(self, title: str, parent=None):
        super().__init__(title, parent)
        self.note = QLabel("Shown once PyTorch has loaded.")
        self.note.setObjectName("help")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Layer", "Type", "Output", "Parameters"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.tree.header().setStretchLastSection(False)
        self.tree.setMinimumHeight(160)
        col = QVBoxLayout(self)
        col.addWidget(self.note)
        col.addWidget(self.tree)

    def show_summary(self, info: dict | None) -> None:
        """Fill the table (None: say why there is none)."""
        self.tree.clear()
        if not info:
            self.note.setText("No layer summary for this model.")
            return
        out = "×".join(map(str, info.get("output_shape") or [])) or "?"
        self.note.setText(f"input {'×'.join(map(str, info['input_shape']))} → output {out} · {info['params']:,} "
                          f"parameters · {info['num_layers']} layers" + (f" · forward failed: {info['error']}"
                                                                        if info.get("error") else ""))
        for row in info["layers"]:
            shape = "×".join(map(str, row["output_shape"])) if row.get("output_shape") else "–"
            item = QTreeWidgetItem([row["name"], row["type"], shape, f"{row['params']:,}" if row["params"] else "–"])
            item.setTextAlignment(3, Qt.AlignRight | Qt.AlignVCenter)
            self.tree.addTopLevelItem(item)
        rows = min(len(info["layers"]), 14)
        self.tree.setFixedHeight(self.tree.header().sizeHint().height() + 22 * rows + 8)
