"""The TOML editor: line numbers, and a message that jumps to the line an error is about."""

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtGui import QTextCursor  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from kdstudio.gui.toml_panel import error_line  # noqa: E402


@pytest.fixture
def window(window):
    """The shared window with the Digits demo project open (first start)."""
    window.open_initial()
    return window


# ---- TOML editor -------------------------------------------------------------------------------------------

def test_toml_editor_has_line_numbers(window):
    window.toml_dock.show()
    editor = window.toml.editor
    QApplication.processEvents()
    assert editor.viewportMargins().left() == editor.gutter_width() > 0
    assert editor.gutter.isVisible() and editor.gutter.width() == editor.gutter_width()
    digits = editor.gutter_width()
    editor.setPlainText("x = 1\n" * 1200)  # four-digit line numbers widen the gutter
    assert editor.gutter_width() > digits and editor.viewportMargins().left() == editor.gutter_width()


def test_toml_error_link_moves_the_cursor_to_the_error_line(window, qtbot):
    window.toml_dock.show()
    editor, status = window.toml.editor, window.toml.status
    lines = editor.toPlainText().splitlines()
    bad = next(i for i, line in enumerate(lines) if line.startswith("temperature")) + 1
    lines[bad - 1] = "temperature = = 4"
    editor.setPlainText("\n".join(lines) + "\n")
    editor.moveCursor(QTextCursor.Start)
    assert not window.toml.apply()
    assert f"line {bad}" in status.text() and f"href='line:{bad}'" in status.text()
    assert editor.marked_line() == bad  # highlighted at once
    status.linkActivated.emit(f"line:{bad}")
    assert editor.textCursor().blockNumber() + 1 == bad
    # a key the schema does not know: the link goes to the line that sets it
    text = editor.toPlainText().replace("temperature = = 4", "temperature = 4").replace("[distill]", "[distil]")
    editor.setPlainText(text)
    assert not window.toml.apply()
    section = text.splitlines().index("[distil]") + 1
    assert "Unknown setting 'distil'" in status.text() and editor.marked_line() == section
    status.linkActivated.emit(f"line:{section}")
    assert editor.textCursor().blockNumber() + 1 == section
    # saving still works as before, and clears the mark
    editor.setPlainText(text.replace("[distil]", "[distill]"))
    assert window.toml.apply() and status.text().startswith("Saved") and editor.marked_line() is None


def test_error_line_finds_the_line_from_the_parser_or_the_key():
    text = "seed = 0\n\n[teacher]\nepochs = 0\nlr = 0.1\n\n[student]\nepochs = 3\n"
    assert error_line(text, "TOML syntax error: Invalid value (at line 4, column 10).") == 4
    assert error_line(text, "whatever", key="student.epochs") == 8
    assert error_line(text, "'teacher.lr' must be a number, not 'x'.") == 5
    assert error_line(text, "whatever", key="seed") == 1  # a top-level key
    assert error_line(text, "no key here") is None
