"""The window's trust prompt: a TorchScript, pickle or file.py the project names runs only after the user trusts it.

The background probe (tasks.model_info) never runs such a file; it lists it under `untrusted`. This asks once per
file and content, says what the file could do, and remembers a yes for this project (core/trust.TrustStore, in the
app's settings folder, so a project folder from elsewhere cannot carry its own trust).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox

from ..core import trust
from ..core.errors import KDError


class TrustPrompt(QObject):
    """Restores a project's remembered grants when it opens and asks about each untrusted file the probe met."""

    granted = Signal(str)  # the path just trusted

    def __init__(self, window, model, hub, settings_file: Path):
        super().__init__(window)
        self.window, self.model, self.hub = window, model, hub
        self.store = trust.TrustStore(Path(settings_file).parent / "trust.json")
        self.box: QMessageBox | None = None
        self._declined: set[tuple[str, str]] = set()  # asked and refused in this session: not asked again
        model.project_changed.connect(self._on_project)
        hub.info_ready.connect(self._on_info)

    def _on_project(self, project) -> None:
        trust.revoke_all()  # grants belong to one project
        self._declined.clear()
        if project is not None:
            self.store.apply(project.path)

    def _on_info(self, info: dict) -> None:
        if self.box is not None or self.model.project is None:
            return
        for item in info.get("untrusted", []):
            if (item["path"], item["sha256"]) not in self._declined:
                self.ask(item)
                return

    def ask(self, item: dict) -> QMessageBox:
        """Open (not block on) the question for one file: {"role", "path", "kind", "sha256"}."""
        name = self.model.project.name
        box = QMessageBox(QMessageBox.Warning, "Trust this file?", trust.describe(item["kind"], item["path"]),
                          QMessageBox.NoButton, self.window)
        box.setInformativeText(f"The {item['role']} of project '{name}' needs it. Trust it only if you know where "
                               f"it comes from; {trust.SAFE_INSTEAD[item['kind']]}.\n\nSHA-256 {item['sha256']}\n"
                               "A changed file is asked about again.")
        box.yes = box.addButton("Trust this file", QMessageBox.AcceptRole)
        box.no = box.addButton("Do not load it", QMessageBox.RejectRole)
        box.setDefaultButton(box.no)
        box.finished.connect(lambda _r: self._answered(box, item))
        self.box = box
        box.open()
        return box

    def _answered(self, box: QMessageBox, item: dict) -> None:
        self.box = None
        if box.clickedButton() is not box.yes:
            self._declined.add((item["path"], item["sha256"]))
            return
        try:
            self.store.remember(self.model.project.path, Path(item["path"]), item["kind"], item["sha256"])
        except KDError as e:  # trusted for this session all the same; only remembering it failed
            trust.grant(item["path"], item["sha256"])
            self.window.statusBar().showMessage(f"Trusted for now, but not remembered: {e}", 8000)
        self.granted.emit(item["path"])
        self.hub.recount()
