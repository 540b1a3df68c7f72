"""Facts the pages show that need torch: the method/arch catalog, data shape and parameter counts.

Torch is imported in a background thread after the window is up; the counts are recomputed (debounced) when the
data, teacher or student settings change, and a stale answer is dropped.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from . import tasks
from .model import ConfigModel

RECOUNT_MS = 350
AFFECTS_MODELS = ("data", "teacher", "student", "seed")


class InfoHub(QObject):
    """Loads the catalog once and keeps the model info (parameter counts) of the current config fresh."""

    catalog_ready = Signal(dict)
    info_ready = Signal(dict)
    info_failed = Signal(str)
    busy = Signal(bool)

    def __init__(self, model: ConfigModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.catalog: dict | None = None
        self.info: dict | None = None
        self._generation = 0
        self._running = False
        self._pending = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RECOUNT_MS)
        self._timer.timeout.connect(self._compute)
        model.config_changed.connect(self._on_change)
        self.task = None

    def load_catalog(self) -> None:
        """Import torch and the registries in the background (call once the window is shown)."""
        self.task = tasks.start_task(tasks.load_catalog, on_done=self._catalog_done,
                                     on_error=lambda m, d: self.info_failed.emit(f"PyTorch could not load: {m}"))

    def _catalog_done(self, catalog: dict) -> None:
        import gc
        gc.freeze()  # torch's ~200k long-lived objects leave the collector: no multi-100-ms gen-2 pauses later
        self.catalog = catalog
        self.catalog_ready.emit(catalog)
        self.model.validate()  # the method/arch checks registered themselves on import
        self._timer.start(0)

    def _on_change(self, key: str) -> None:
        if key == "" or key.split(".")[0] in AFFECTS_MODELS:
            self._generation += 1
            self.info = None
            self._timer.start()

    def _compute(self) -> None:
        if self.catalog is None or self.model.cfg is None:
            return
        if self._running:
            self._pending = True
            return
        blocking = [(k, m) for k, m in self.model.problems if k.split(".")[0] in AFFECTS_MODELS]
        if blocking:  # building models from an invalid config only produces a raw PyTorch error
            self.info = None
            self.info_failed.emit(f"Fix {blocking[0][0]} first: {blocking[0][1]}")
            return
        self._running, self._pending = True, False
        generation = self._generation
        self.busy.emit(True)
        self.task = tasks.start_task(tasks.model_info, self.model.cfg.copy(),
                                     on_done=lambda info: self._done(generation, info),
                                     on_error=lambda m, d: self._failed(generation, m))

    def _finish(self) -> bool:
        self._running = False
        self.busy.emit(False)
        if self._pending:
            self._timer.start(0)
            return False
        return True

    def _done(self, generation: int, info: dict) -> None:
        if self._finish() and generation == self._generation:
            self.info = info
            self.info_ready.emit(info)

    def _failed(self, generation: int, message: str) -> None:
        if self._finish() and generation == self._generation:
            self.info_failed.emit(message)
