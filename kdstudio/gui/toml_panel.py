"""The config as TOML text: follows the forms live, can be edited and saved; repairs a damaged project.toml."""

from __future__ import annotations

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from ..core import config as config_mod
from ..core.errors import KDError
from .model import ConfigModel


class TomlPanel(QWidget):
    """Editor for the open project's project.toml."""

    def __init__(self, model: ConfigModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.editor = QPlainTextEdit()
        self.editor.setObjectName("toml")
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.editor.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.editor.textChanged.connect(self._on_text)
        self.apply_btn = QPushButton("Save TOML")
        self.apply_btn.setToolTip("Parse the text, apply it to the forms and write project.toml")
        self.revert_btn = QPushButton("Revert")
        self.apply_btn.clicked.connect(self.apply)
        self.revert_btn.clicked.connect(self.revert)
        self.status = QLabel()
        self.status.setObjectName("help")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.apply_btn)
        row.addWidget(self.revert_btn)
        row.addStretch(1)
        col = QVBoxLayout(self)
        col.setContentsMargins(6, 6, 6, 6)
        col.addWidget(self.editor, 1)
        col.addLayout(row)
        col.addWidget(self.status)
        self._loading = False
        self.dirty = False
        model.config_changed.connect(lambda _k: self.dirty or self.revert())
        model.project_changed.connect(lambda _p: self.revert())
        self.revert()

    def _set_text(self, text: str) -> None:
        self._loading = True
        bar = self.editor.verticalScrollBar().value()
        self.editor.setPlainText(text)
        self.editor.verticalScrollBar().setValue(bar)
        self._loading = False
        self.dirty = False
        self.apply_btn.setEnabled(False)
        self.revert_btn.setEnabled(False)

    def _on_text(self) -> None:
        if not self._loading:
            self.dirty = True
            self.apply_btn.setEnabled(True)
            self.revert_btn.setEnabled(True)
            self.status.setText("Edited — Save TOML applies it to the forms and writes project.toml.")

    def revert(self) -> None:
        """Show the current config (or the damaged file's raw text) and drop unsaved edits."""
        p = self.model.project
        if p is None:
            self._set_text("")
            self.editor.setReadOnly(True)
            self.status.setText("No project open.")
            return
        self.editor.setReadOnly(False)
        if p.damaged:
            try:
                text = p.file.read_text(encoding="utf-8", errors="replace")
            except OSError as e:
                text = f"# cannot read {p.file}: {e}\n"
            self._set_text(text)
            self.status.setText(f"Damaged: {p.error} Fix the text and press Save TOML; until then nothing "
                                "overwrites the file.")
        else:
            self._set_text(config_mod.dumps(self.model.cfg))
            self.status.setText(f"{p.file}")

    def apply(self) -> bool:
        """Parse and save the text; on a mistake, say what is wrong and keep the text."""
        p = self.model.project
        if p is None:
            return False
        text = self.editor.toPlainText()
        try:
            if p.damaged:
                p.save_text(text)
                self.model.set_project(p)
            else:
                cfg = config_mod.loads(text, where="project.toml")
                self.model.replace(cfg)
                if not self.model.save_now():
                    return False
        except KDError as e:
            self.status.setText(f"<span style='color:#d93025'>Not saved: {e}</span>")
            return False
        except OSError as e:
            self.status.setText(f"<span style='color:#d93025'>Not saved: {e.strerror or e}</span>")
            return False
        self.revert()
        self.status.setText(f"Saved {p.file}")
        return True
