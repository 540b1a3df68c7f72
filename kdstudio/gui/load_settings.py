"""'Load settings': a past run's config put back into the open project, with an "Undo load" button in the
window's status bar (the window has no undo stack; this one step is what a person undoes after a load)."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMessageBox, QPushButton, QStatusBar

from ..core.config import ConfigError
from ..core.store.projects import RunInfo
from ..core.store.run_labels import read_label
from .model import ConfigModel
from .pages.compare import load_run_config


class SettingsLoader(QObject):
    """Loads a run's settings into the model; "Undo load" brings the previous ones back until the next edit."""

    def __init__(self, model: ConfigModel, status: QStatusBar, parent=None):
        super().__init__(parent)
        self.model, self.status = model, status
        self.previous = None  # the project's config before the last load (None: nothing to undo)
        self._loading = False
        self.undo_btn = QPushButton("Undo load")
        self.undo_btn.setToolTip("Put back the project's settings as they were before the run's were loaded "
                                 "(Ctrl+Z)")
        self.undo_btn.setShortcut(QKeySequence.Undo)  # a text field being edited keeps its own Ctrl+Z
        self.undo_btn.clicked.connect(self.undo)
        self.undo_btn.hide()
        status.addPermanentWidget(self.undo_btn)
        model.config_changed.connect(self._on_config_changed)
        model.project_changed.connect(lambda _p: self._forget())

    def load(self, run: RunInfo) -> bool:
        """Replace the project's config by the run's (saved a moment later, as an edit is); True when loaded."""
        if self.model.cfg is None:
            return False
        if self.model.read_only:  # another window edits this project: nothing here would be saved
            QMessageBox.warning(self.status.window(), "Load settings", self.model.read_only)
            return False
        try:
            cfg = load_run_config(run.path)
        except ConfigError as e:
            QMessageBox.warning(self.status.window(), "Load settings", str(e))
            return False
        previous = self.model.cfg.copy()
        self._loading = True
        try:
            self.model.replace(cfg)
        finally:
            self._loading = False
        self.previous = previous
        self.undo_btn.show()
        name = read_label(run.path)["name"] or run.name
        self.status.showMessage(f"Loaded the settings of run {name} into the project.", 10000)
        return True

    def undo(self) -> None:
        """Put the settings from before the load back."""
        if self.previous is None:
            return
        previous, self.previous = self.previous, None
        self._loading = True
        try:
            self.model.replace(previous)
        finally:
            self._loading = False
        self.undo_btn.hide()
        self.status.showMessage("The project's settings are as they were before the load.", 10000)

    def _on_config_changed(self, _key: str) -> None:
        if not self._loading:  # an edit after the load: undoing would silently drop it
            self._forget()

    def _forget(self) -> None:
        self.previous = None
        self.undo_btn.hide()
