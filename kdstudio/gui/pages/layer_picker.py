"""The layer pickers of the Method page: the real module paths of the configured teacher and student (a zoo,
torchvision, timm or file model), each with its output shape, added to distill.teacher_layers / student_layers.

Only layers a feature method can match are listed: those that return one tensor and run once per forward pass
(`matching.describe_layers`, computed with the parameter counts in gui/tasks.py).
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QSizePolicy

from ..model import ConfigModel


def _shape_text(shape) -> str:
    return "×".join(map(str, shape)) if shape else "–"


class LayerPicker(QComboBox):
    """A drop-down of one model's matchable layers; choosing one appends its path to the `distill.<role>_layers`
    list (the text field beside it shows and edits the whole list)."""

    def __init__(self, role: str, model: ConfigModel, parent=None):
        super().__init__(parent)
        self.role, self.config, self.key = role, model, f"distill.{role}_layers"
        self.layers: list[dict] = []
        self.setObjectName(f"{role}LayerPicker")
        self.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(22)
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)
        self.activated.connect(self._chosen)
        self.show_layers(None, "Shown once PyTorch has counted the models.")

    def show_layers(self, layers: list[dict] | None, reason: str = "") -> None:
        """List `layers` ([{name, type, shape}]); None: disabled, with `reason` as the tooltip."""
        self.layers = list(layers or [])
        self.clear()
        self.addItem(f"Add a {self.role} layer…", None)
        for row in self.layers:
            self.addItem(f"{row['name']}  ·  {_shape_text(row.get('shape'))}  ·  {row['type']}", row["name"])
        self.setEnabled(bool(self.layers))
        self.setToolTip(f"{len(self.layers)} {self.role} layers that return one tensor and run once per forward "
                        f"pass, with their output per sample; choosing one adds it to {self.key}"
                        if self.layers else reason)

    def names(self) -> list[str]:
        """The listed module paths, in forward order."""
        return [row["name"] for row in self.layers]

    def _chosen(self, index: int) -> None:
        name = self.itemData(index)
        self.setCurrentIndex(0)
        if name is None or self.config.cfg is None:
            return
        current = list(self.config.cfg.get(self.key) or [])
        self.config.set(self.key, current + [name])
