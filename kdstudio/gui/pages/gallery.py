"""The Evaluate page's gallery: misclassified test images of one model, as nearest-neighbour thumbnails.

The images come from core.artifacts.gallery (the run's evaluation.json says which test examples were wrong; the
data is loaded again to fetch them), in a background task, and only when the tab is shown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QListView, QListWidget, QListWidgetItem, QVBoxLayout, \
    QWidget

from .. import tasks

THUMB = 64   # thumbnail side in pixels (8×8 digits are scaled up 8×, nearest neighbour)
LIMIT = 64   # thumbnails per model
NAMES = {"teacher": "Teacher", "student": "Student", "baseline": "Baseline"}


def thumbnail(image: np.ndarray, side: int = THUMB) -> QPixmap:
    """A uint8 (H, W) or (H, W, 3) image as a pixmap whose longer side is `side` (nearest neighbour when enlarged)."""
    img = np.ascontiguousarray(image)
    h, w = img.shape[:2]
    if img.ndim == 2:
        q = QImage(img.data, w, h, w, QImage.Format_Grayscale8).copy()
    else:
        q = QImage(img.data, w, h, 3 * w, QImage.Format_RGB888).copy()
    mode = Qt.FastTransformation if max(h, w) <= side else Qt.SmoothTransformation
    return QPixmap.fromImage(q.scaled(side, side, Qt.KeepAspectRatio, mode))


def _examples(count: int) -> str:
    return f"{count:,} test example" + ("" if count == 1 else "s")


class Gallery(QWidget):
    """A model chooser, one line of status, and a grid of misclassified examples captioned true → predicted."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.run_dir: Path | None = None
        self.details: dict = {}
        self.examples: list[dict] = []
        self.task = None
        self._shown_key = None  # (run, model) whose thumbnails are loaded or loading
        self._generation = 0
        self.model_box = QComboBox()
        self.message = QLabel("Finish a run to see the test examples its models got wrong.")
        self.message.setObjectName("pageIntro")
        self.message.setWordWrap(True)
        self.grid = QListWidget()
        self.grid.setViewMode(QListView.IconMode)
        self.grid.setIconSize(QSize(THUMB, THUMB))
        self.grid.setGridSize(QSize(THUMB + 56, THUMB + 30))
        self.grid.setResizeMode(QListView.Adjust)
        self.grid.setMovement(QListView.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setSelectionMode(QListWidget.NoSelection)
        self.grid.setTextElideMode(Qt.ElideMiddle)
        self.grid.setSpacing(2)
        row = QHBoxLayout()
        row.addWidget(QLabel("Model"))
        row.addWidget(self.model_box)
        row.addWidget(self.message, 1)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 4, 0, 0)
        col.addLayout(row)
        col.addWidget(self.grid, 1)
        self.model_box.currentIndexChanged.connect(lambda _i: self.refresh())

    def models(self) -> list[str]:
        """Models of the evaluation that have a list of misclassified examples."""
        return [k for k, v in (self.details.get("models") or {}).items()
                if isinstance(v, dict) and isinstance(v.get("misclassified"), list)]

    def set_run(self, run_dir: Path | None, details: dict | None) -> None:
        """Show this run's evaluation (None: nothing); thumbnails load when the tab is visible."""
        self.run_dir, self.details = (Path(run_dir) if run_dir else None), (details or {})
        self._shown_key = None
        self._generation += 1  # an answer for the previous run is dropped
        models = self.models()
        self.model_box.blockSignals(True)
        self.model_box.clear()
        for k in models:
            self.model_box.addItem(NAMES.get(k, k), k)
        if "student" in models:
            self.model_box.setCurrentIndex(models.index("student"))
        self.model_box.blockSignals(False)
        self.model_box.setEnabled(bool(models))
        self.grid.clear()
        self.examples = []
        if not models:
            self.message.setText("This run has no evaluation details; finish (or evaluate) a run to see its "
                                 "misclassified test examples.")
        self.refresh()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.refresh()

    def refresh(self) -> None:
        """Load the chosen model's misclassified examples, if visible and not already shown."""
        model = self.model_box.currentData()
        key = (self.run_dir, model)
        if self.run_dir is None or model is None or key == self._shown_key or not self.isVisible():
            return
        self._shown_key = key
        self._generation += 1
        generation = self._generation
        self.grid.clear()
        self.examples = []
        m = self.details["models"][model]
        name = self.model_box.currentText()
        if not m["misclassified"]:
            self.message.setText(f"No mistakes: {name} classified every test example correctly.")
            return
        self.message.setText(f"Loading the test examples {name} got wrong…")
        self.task = tasks.start_task(tasks.gallery, self.run_dir, model, LIMIT, owner=self,
                                     on_done=lambda ex: self._done(generation, name, m, ex),
                                     on_error=lambda msg, _d: self._failed(generation, msg))

    def _done(self, generation: int, name: str, metrics: dict, examples: list[dict]) -> None:
        if generation != self._generation:
            return
        count = metrics.get("misclassified_count", len(metrics["misclassified"]))
        if not examples:
            self.message.setText(f"This run's data are not images, so there is no gallery; {name} misclassified "
                                 f"{_examples(count)} (see the confusion matrix).")
            return
        self.examples = examples
        shown = f"the first {len(examples)}" if count > len(examples) else "all"
        self.message.setText(f"{name} misclassified {_examples(count)}; {shown} shown as true → predicted "
                             "(confidence in the prediction).")
        for ex in examples:
            caption = f"{ex['true_name']} → {ex['pred_name']} ({ex['confidence'] * 100:.0f}%)"
            item = QListWidgetItem(QIcon(thumbnail(ex["image"])), caption)
            item.setToolTip(f"test example #{ex['index']}: true class {ex['true_name']}, predicted "
                            f"{ex['pred_name']} with confidence {ex['confidence']:.1%}")
            item.setTextAlignment(Qt.AlignHCenter | Qt.AlignTop)
            self.grid.addItem(item)

    def _failed(self, generation: int, message: str) -> None:
        if generation == self._generation:
            self._shown_key = None  # showing the tab again tries again
            self.message.setText(f"Could not load the misclassified examples: {message}")

    def captions(self) -> list[str]:
        """The captions shown, in order (for tests and screenshots)."""
        return [self.grid.item(i).text() for i in range(self.grid.count())]
