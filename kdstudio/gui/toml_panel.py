"""The config as TOML text: follows the forms live, can be edited and saved; repairs a damaged project.toml."""

from __future__ import annotations

import html
import re

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QFontDatabase, QPainter, QTextCursor, QTextFormat
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QTextEdit, QVBoxLayout, QWidget

from ..core.errors import KDError
from . import theme
from .model import ConfigModel


def error_line(text: str, message: str, key: str | None = None) -> int | None:
    """The 1-based line an error is about: the line TOML's parser names ("at line 3"), else the line that sets
    the error's key (or the first quoted dotted key in the message), else None."""
    m = re.search(r"\bat line (\d+)", message)
    if m:
        return int(m.group(1))
    if not key:
        m = re.search(r"'(\w+(?:\.\w+)?)'", message)
        key = m.group(1) if m else None
    if not key:
        return None
    section, _, name = key.rpartition(".")
    current = ""
    for i, line in enumerate(text.splitlines(), start=1):
        head = re.match(r"\s*\[\s*([\w.]+)\s*\]", line)
        if head:
            current = head.group(1)
            if current == key:  # an unknown [section], or a section written as a key's value
                return i
        elif current == section and re.match(rf"\s*{re.escape(name)}\s*=", line):
            return i
    return None


class LineNumbers(QWidget):
    """The gutter left of the editor; the editor paints it."""

    def __init__(self, editor: "CodeEditor"):
        super().__init__(editor)
        self.editor = editor

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(self.editor.gutter_width(), 0)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.editor.paint_gutter(event.rect())


class CodeEditor(QPlainTextEdit):
    """Plain text with line numbers in a gutter and one line that can be marked (an error's line)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.gutter = LineNumbers(self)
        self.blockCountChanged.connect(self._fit_gutter)
        self.updateRequest.connect(self._on_update_request)
        self._fit_gutter()

    def gutter_width(self) -> int:
        digits = max(2, len(str(self.blockCount())))
        return 14 + self.fontMetrics().horizontalAdvance("9") * digits

    def _fit_gutter(self, *_) -> None:
        self.setViewportMargins(self.gutter_width(), 0, 0, 0)

    def _on_update_request(self, rect: QRect, dy: int) -> None:
        if dy:
            self.gutter.scroll(0, dy)
        else:
            self.gutter.update(0, rect.y(), self.gutter.width(), rect.height())

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        r = self.contentsRect()
        self.gutter.setGeometry(QRect(r.left(), r.top(), self.gutter_width(), r.height()))

    def paint_gutter(self, area: QRect) -> None:
        p = QPainter(self.gutter)
        p.fillRect(area, theme.qcolor("surface_alt"))
        p.setFont(self.font())
        p.setPen(theme.qcolor("dim"))
        block = self.firstVisibleBlock()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        width, height = self.gutter.width() - 6, self.fontMetrics().height()
        while block.isValid() and top <= area.bottom():
            bottom = top + round(self.blockBoundingRect(block).height())
            if block.isVisible() and bottom >= area.top():
                p.drawText(0, top, width, height, Qt.AlignRight, str(block.blockNumber() + 1))
            block, top = block.next(), bottom
        p.end()

    def mark_line(self, line: int | None) -> None:
        """Highlight a 1-based line (None clears it); the mark follows the line while the text is edited."""
        block = self.document().findBlockByNumber(line - 1) if line else None
        marks = []
        if block is not None and block.isValid():
            mark = QTextEdit.ExtraSelection()
            mark.format.setBackground(theme.qcolor("error_bg"))
            mark.format.setProperty(QTextFormat.FullWidthSelection, True)
            mark.cursor = QTextCursor(block)
            marks.append(mark)
        self.setExtraSelections(marks)

    def goto_line(self, line: int) -> bool:
        """Put the cursor at the start of a 1-based line, scroll it into view and focus the editor."""
        block = self.document().findBlockByNumber(line - 1)
        if not block.isValid():
            return False
        self.setTextCursor(QTextCursor(block))
        self.centerCursor()
        self.setFocus(Qt.OtherFocusReason)
        return True

    def marked_line(self) -> int | None:
        """The highlighted 1-based line, or None."""
        marks = self.extraSelections()
        return marks[0].cursor.blockNumber() + 1 if marks else None


class TomlPanel(QWidget):
    """Editor for the open project's project.toml."""

    def __init__(self, model: ConfigModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.editor = CodeEditor()
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
        self.status.linkActivated.connect(lambda link: self.editor.goto_line(int(link.split(":")[1])))
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
        self.editor.mark_line(None)
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
            self._show_error(f"Damaged: {p.error} Fix the text and press Save TOML; until then nothing "
                             "overwrites the file.", p.error)
        else:
            self._set_text(p.text_for(self.model.cfg))  # the file itself, with pending form edits applied
            self.status.setText(f"{p.file}")

    def apply(self) -> bool:
        """Parse and save the text; on a mistake, say what is wrong and keep the text."""
        p = self.model.project
        if p is None:
            return False
        text = self.editor.toPlainText()
        try:
            if self.model.read_only:  # another window holds this project
                raise KDError(self.model.read_only)
            if p.damaged:
                p.save_text(text)
                self.model.set_project(p)
            else:
                self.model.save_text(text)
        except KDError as e:
            self._show_error(f"Not saved: {e}", str(e), getattr(e, "key", None), color=True)
            return False
        except OSError as e:
            self.status.setText(theme.span(f"Not saved: {e.strerror or e}", "error"))
            return False
        self.revert()
        self.status.setText(f"Saved {p.file}")
        return True

    def _show_error(self, text: str, message: str, key: str | None = None, color: bool = False) -> None:
        """The message, with a link to the line it is about (that line is highlighted)."""
        line = error_line(self.editor.toPlainText(), message, key)
        self.editor.mark_line(line)
        body = html.escape(text, quote=False)
        if color:
            body = theme.span(body, "error")
        self.status.setText(body + (f" <a href='line:{line}'>Go to line {line}</a>" if line else ""))
