"""Comparing runs as a practitioner does: a run's name and note (run.json), the settings that differ as columns of
the runs table, numeric sorting, Compare (two runs side by side), and Load settings with its undo."""

import json

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QLineEdit, QPlainTextEdit  # noqa: E402

from kdstudio.core import config as config_mod  # noqa: E402
from kdstudio.core.config import Config, diff  # noqa: E402
from kdstudio.core.errors import KDError  # noqa: E402
from kdstudio.core.store.run_labels import read_label, write_label  # noqa: E402
from kdstudio.gui.pages.history import COLUMNS  # noqa: E402
from tests.test_gui_gain import HELPED, NOISE, _finished_run  # noqa: E402


def settle():
    """Let the window handle what the last click or key queued."""
    for _ in range(4):
        QApplication.processEvents()


def rename_by_typing(qtbot, tree, item, name: str) -> None:
    """Rename a runs-table row as a person does: click it, double-click its name, type, Enter."""
    tree.window().activateWindow()  # a page built offscreen can leave no window active: the editor needs focus
    qtbot.waitUntil(tree.window().isActiveWindow, timeout=2000)
    rect = tree.visualItemRect(item)
    rect.setWidth(tree.columnWidth(0))
    qtbot.mouseClick(tree.viewport(), Qt.LeftButton, pos=rect.center())
    qtbot.mouseDClick(tree.viewport(), Qt.LeftButton, pos=rect.center())
    editor = QApplication.focusWidget()
    assert isinstance(editor, QLineEdit)
    editor.selectAll()
    qtbot.keyClick(editor, Qt.Key_Delete)
    qtbot.keyClicks(editor, name)
    qtbot.keyClick(editor, Qt.Key_Return)
    settle()


# ---- core: labels and diffs ----------------------------------------------------------------------------------

def test_label_is_read_back_and_a_folder_without_one_has_no_name(tmp_path):
    assert read_label(tmp_path) == {"name": "", "note": ""}
    (tmp_path / "run.json").write_text("{not json")
    assert read_label(tmp_path) == {"name": "", "note": ""}  # damaged: no name, the timestamp shows
    assert write_label(tmp_path, name="  T=2  ") == {"name": "T=2", "note": ""}
    write_label(tmp_path, note="cooler teacher")
    assert json.loads((tmp_path / "run.json").read_text()) == {"name": "T=2", "note": "cooler teacher"}
    with pytest.raises(KDError, match="one line"):
        write_label(tmp_path, name="a\nb")
    with pytest.raises(KDError, match="not a run folder"):
        write_label(tmp_path / "gone", name="x")


def test_diff_lists_only_the_keys_that_differ_with_both_values():
    a, b, c = Config(), Config(), Config()
    b.distill.temperature, c.seed = 2.0, 7
    flat = [diff.flatten(x.to_dict()) for x in (a, b, c)]
    assert diff.differing_keys(flat) == ["seed", "distill.temperature"]
    assert diff.diff(flat[0], flat[1]) == [("distill.temperature", 4.0, 2.0)]
    b.distill.temperature = 4  # the same number as an int
    assert diff.diff(flat[0], diff.flatten(b.to_dict())) == []
    assert [diff.show(v) for v in (True, "kd", 2.0, ["onnx"], {"beta": 8.0}, diff.MISSING)] == \
        ["true", '"kd"', "2.0", '["onnx"]', "{ beta = 8.0 }", "–"]


# ---- the runs table ---------------------------------------------------------------------------------------------

def _project_with_runs(window):
    """Three finished runs that differ in distill.temperature (and seed); the student's accuracy differs too."""
    window.panel.new_project("Compare")
    project = window.model.project
    folders = []
    for i, (stats, temperature) in enumerate([(HELPED, 4.0), (NOISE, 2.0), (HELPED, 10.0)]):
        folder = _finished_run(project, f"2026010{i + 1}-030401", stats, seed=i)
        cfg = config_mod.load(folder / "config.toml")
        cfg.distill.temperature = temperature
        config_mod.save(cfg, folder / "config.toml")
        folders.append(folder)
    window.show_page("Train")
    window.train.history.reload(project)
    settle()
    return project, folders


def _rows(tree):
    return [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]


def _column(tree, title):
    return next(c for c in range(tree.columnCount()) if tree.headerItem().text(c) == title)


def _click_header(qtbot, tree, column):
    header = tree.header()
    tree.scrollTo(tree.model().index(0, column))  # the settings' columns may lie beyond the view's right edge
    at = QPoint(header.sectionViewportPosition(column) + header.sectionSize(column) // 2, header.height() // 2)
    qtbot.mouseClick(header.viewport(), Qt.LeftButton, pos=at)


def _click_row(qtbot, tree, item, modifier=Qt.NoModifier):
    rect = tree.visualItemRect(item)
    qtbot.mouseClick(tree.viewport(), Qt.LeftButton, modifier, rect.center())


def test_the_table_shows_the_differing_settings_and_sorts_numbers_as_numbers(window, qtbot):
    _project, folders = _project_with_runs(window)
    history = window.train.history
    tree = history.tree
    assert history.setting_keys == ["seed", "distill.temperature"]
    assert [tree.headerItem().text(c) for c in range(len(COLUMNS))] == COLUMNS  # the metrics come first
    window.resize(1280, 800)
    settle()
    metrics = sum(tree.columnWidth(c) for c in range(len(COLUMNS)))
    assert metrics <= tree.viewport().width()  # every metric in view at 1280 px; only the settings scroll sideways
    col = _column(tree, "distill.temperature")
    _click_header(qtbot, tree, col)
    values = [r.text(col) for r in _rows(tree)]
    assert values in (["2.0", "4.0", "10.0"], ["10.0", "4.0", "2.0"])  # not "10.0" between "2.0" and "4.0"
    _click_header(qtbot, tree, _column(tree, "Student"))
    order = [r.data(0, Qt.UserRole).path for r in _rows(tree)]
    assert order[0 if tree.header().sortIndicatorOrder() == Qt.AscendingOrder else -1] == folders[1]  # 95.3 %


def test_rename_by_double_click_and_typing_shows_the_name_and_writes_run_json(window, qtbot):
    _project, folders = _project_with_runs(window)
    tree = window.train.history.tree
    [item] = [r for r in _rows(tree) if r.data(0, Qt.UserRole).path == folders[0]]
    rename_by_typing(qtbot, tree, item, "T=4 baseline")
    assert read_label(folders[0])["name"] == "T=4 baseline"
    window.train.history.reload()
    assert "T=4 baseline" in [r.text(0) for r in _rows(tree)]

    [item] = [r for r in _rows(tree) if r.data(0, Qt.UserRole).path == folders[1]]
    _click_row(qtbot, tree, item)
    dialog = window.train.history.edit_note()  # the Note… action of the row's context menu
    dialog.findChild(QPlainTextEdit).setPlainText("cooler teacher")
    qtbot.mouseClick(dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.Ok), Qt.LeftButton)
    assert read_label(folders[1]) == {"name": "", "note": "cooler teacher"}
    assert "cooler teacher" in item.toolTip(0)
    assert not item.icon(0).isNull()  # a note shows at a glance


def test_compare_two_selected_runs_shows_the_setting_that_differs(window, qtbot):
    _project, folders = _project_with_runs(window)
    history = window.train.history
    tree = history.tree
    by_path = {r.data(0, Qt.UserRole).path: r for r in _rows(tree)}
    _click_row(qtbot, tree, by_path[folders[0]])
    assert not history.compare_btn.isEnabled()
    _click_row(qtbot, tree, by_path[folders[1]], Qt.ControlModifier)
    assert history.compare_btn.isEnabled()
    qtbot.mouseClick(history.compare_btn, Qt.LeftButton)
    dialog = history.compare_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.differing_settings() == ["seed", "distill.temperature"]
    [row] = [dialog.settings.topLevelItem(i) for i in range(2) if dialog.settings.topLevelItem(i).text(0) ==
             "distill.temperature"]
    assert (row.text(1), row.text(2)) == ("4.0", "2.0")  # the older run on the left
    figures = [dialog.figures.topLevelItem(i).text(0) for i in range(dialog.figures.topLevelItemCount())]
    assert figures[:2] == ["Student accuracy", "KD gain"] and "Student (KD)" in figures
    student = dialog.figures.topLevelItem(0)
    assert (student.text(1), student.text(2), student.text(3)) == ("97.1%", "95.3%", "−1.8 pts")
    dialog.grab().save("/tmp/compare-dialog-test.png")

    (folders[2] / "config.toml").unlink()  # a run whose config is gone: said in one sentence, no settings table
    history.reload()
    by_path = {r.data(0, Qt.UserRole).path: r for r in _rows(tree)}
    _click_row(qtbot, tree, by_path[folders[2]])
    _click_row(qtbot, tree, by_path[folders[0]], Qt.ControlModifier)
    qtbot.mouseClick(history.compare_btn, Qt.LeftButton)
    assert history.compare_dialog is not dialog and not dialog.isVisible()
    again = history.compare_dialog
    assert again.differing_settings() == [] and "cannot be read" in again.same.text()
    assert again.same.text().count(".") == 1 and folders[2].name in again.same.text()
    again.close()


def test_load_settings_puts_a_runs_config_back_and_undo_restores_it(window, qtbot):
    project, folders = _project_with_runs(window)
    before = window.model.cfg.to_dict()
    history = window.train.history
    [item] = [r for r in _rows(history.tree) if r.data(0, Qt.UserRole).path == folders[2]]
    _click_row(qtbot, history.tree, item)
    qtbot.mouseClick(history.load_btn, Qt.LeftButton)
    assert window.model.cfg.distill.temperature == 10.0 and window.model.cfg.seed == 2
    assert window.loader.undo_btn.isVisible()
    window.model.save_now()
    assert config_mod.load(project.file).distill.temperature == 10.0
    qtbot.mouseClick(window.loader.undo_btn, Qt.LeftButton)
    assert window.model.cfg.to_dict() == before and not window.loader.undo_btn.isVisible()
    window.model.save_now()
    assert config_mod.load(project.file).to_dict() == before

    qtbot.mouseClick(history.load_btn, Qt.LeftButton)
    assert window.model.cfg.distill.temperature == 10.0
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    history.tree.setFocus()
    qtbot.keyClick(history.tree, Qt.Key_Z, Qt.ControlModifier)  # Ctrl+Z undoes the load too
    qtbot.waitUntil(lambda: window.model.cfg.to_dict() == before, timeout=3000)  # a shortcut "animates" the click

    qtbot.mouseClick(history.load_btn, Qt.LeftButton)  # an edit after a load: nothing left to undo
    window.model.set("distill.alpha", 0.3)
    assert not window.loader.undo_btn.isVisible()


def test_cli_label_names_a_run_and_prints_it(tmp_path, capsys):
    from kdstudio.cli import main
    assert main(["label", str(tmp_path), "--name", "T=2", "--note", "cooler"]) == 0
    assert read_label(tmp_path) == {"name": "T=2", "note": "cooler"}
    assert main(["label", str(tmp_path)]) == 0
    assert "name: T=2" in capsys.readouterr().out
    assert main(["label", str(tmp_path / "nope"), "--name", "x"]) == 2
    assert "is not a run folder" in capsys.readouterr().err
