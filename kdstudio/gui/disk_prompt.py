"""Asks what to do when project.toml changed outside the window while an edit of ours waits to be saved."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from .model import ConfigModel

RELOAD, KEEP = "Reload from disk", "Keep my edits"


def ask_changed_on_disk(parent: QWidget, model: ConfigModel) -> None:
    """Reload the file (our pending edit is dropped) or keep our edit (saved over it; its changes to other values
    are kept by the save's merge)."""
    name = model.project.file.name if model.project else "project.toml"
    box = QMessageBox(QMessageBox.Question, "KD Studio",
                      f"{name} was changed outside this window while an edit of yours was not saved yet.",
                      parent=parent)
    box.setInformativeText("Reload it to take the other changes (your unsaved edit is dropped), or keep your edit "
                           "(it is saved; the other program's changes to other settings are kept).")
    box.setObjectName("changed-on-disk")
    reload = box.addButton(RELOAD, QMessageBox.AcceptRole)
    box.addButton(KEEP, QMessageBox.RejectRole)
    box.exec()
    if box.clickedButton() is reload:
        model.reload_from_disk()
    else:
        model.save_now()
