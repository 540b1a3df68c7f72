"""Window layout: narrow windows, the TOML dock (width, line numbers, error line), the Start hint, the empty plots."""

import html
import json
import re

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QTextCursor  # noqa: E402
from PySide6.QtWidgets import QApplication, QToolButton  # noqa: E402

from kdstudio.core import events as ev  # noqa: E402
from kdstudio.gui.pages.train_parts import NO_RUN_TEXT, hint_html  # noqa: E402
from kdstudio.gui.toml_panel import error_line  # noqa: E402


@pytest.fixture
def window(window):
    """The shared window with the Digits demo project open (first start)."""
    window.open_initial()
    return window


def _settle(window, width, height):
    window.resize(width, height)
    for _ in range(5):
        QApplication.processEvents()


def _plain(rich: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", rich))


# ---- narrow windows ----------------------------------------------------------------------------------------

def test_at_800_px_every_tab_and_every_train_button_is_whole(window):
    assert window.minimumWidth() <= 800 and window.minimumHeight() <= 600
    _settle(window, 800, 600)
    window.show_page("Train")
    _settle(window, 800, 600)
    bar = window.tabs.tabBar()
    assert bar.count() == 7
    assert all(bar.tabRect(i).right() <= bar.width() for i in range(bar.count()))  # "7 Export" on screen
    assert bar.tabToolTip(6).startswith("Export")
    buttons = window.train.controls.findChildren(QToolButton)
    assert len(buttons) == 5 and all(b.isVisible() for b in buttons)
    for b in buttons:  # no text cut off: every button got the width its text needs
        assert b.width() >= b.sizeHint().width(), b.text()
    # the plots keep their width: the log goes beside the runs below them, not beside the plots
    assert window.train.log_pane.parent() is window.train.side
    _settle(window, 1440, 900)
    assert window.train.log_pane.parent() is window.train.top


def test_project_list_folds_in_a_narrow_window_and_comes_back(window):
    _settle(window, 1440, 900)
    assert not window.panel.isHidden() and window.projects_act.isChecked()
    _settle(window, 800, 600)
    assert window.panel.isHidden() and not window.projects_act.isChecked()
    _settle(window, 1200, 800)
    assert not window.panel.isHidden()
    window.projects_act.trigger()  # the user hides it: it stays hidden through narrowing and widening
    assert window.panel.isHidden()
    _settle(window, 800, 600)
    _settle(window, 1440, 900)
    assert window.panel.isHidden()
    window.projects_act.trigger()
    _settle(window, 1440, 900)
    assert not window.panel.isHidden() and window.split.sizes()[0] >= window.panel.minimumSizeHint().width()


def test_train_toolbar_drops_the_device_label_before_cutting_a_button(window):
    _settle(window, 800, 600)
    window.set_project_list_visible(True, chosen=True)  # the user wants the list even at 800 px
    window.show_page("Train")
    _settle(window, 800, 600)
    controls = window.train.controls
    assert controls.device_label.isHidden()
    assert "auto" in controls.settings_btn.toolTip()  # the device is still one hover away
    for b in controls.findChildren(QToolButton):
        assert b.width() >= b.sizeHint().width(), b.text()
    window.set_project_list_visible(False, chosen=True)
    _settle(window, 1440, 900)
    assert not controls.device_label.isHidden()


def test_long_project_path_is_shortened_not_widening_the_window(window):
    window.path_label.set_full_text("/very/long/" + "folder/" * 60 + "Digits demo")
    _settle(window, 1024, 700)
    assert window.centralWidget().minimumSizeHint().width() < 1024
    assert window.path_label.geometry().right() < window.toml_btn.geometry().left()
    assert "…" in window.path_label.text() and window.path_label.toolTip().endswith("Digits demo")


# ---- TOML dock and editor ----------------------------------------------------------------------------------

def test_toml_dock_opens_at_a_useful_width(window, qtbot):
    _settle(window, 1440, 900)
    window.toml_act.trigger()
    qtbot.waitUntil(lambda: window.toml_dock.width() >= 400, timeout=3000)
    assert not window.panel.isHidden()  # 1440 px leave room for the list, the pages and the dock
    window.toml_act.trigger()
    _settle(window, 1024, 700)
    window.toml_act.trigger()  # in a 1024 px window the project list makes room for the dock
    # (the dock may be that wide at once and the list fold a moment later, once the dock's geometry is known)
    qtbot.waitUntil(lambda: window.toml_dock.width() >= 400 and window.panel.isHidden(), timeout=3000)
    assert window.panel.isHidden()


def test_toml_dock_stays_useful_when_the_window_shrinks(window, qtbot):
    _settle(window, 1440, 900)
    window.toml_act.trigger()
    qtbot.waitUntil(lambda: window.toml_dock.width() >= 400, timeout=3000)
    _settle(window, 1024, 700)  # opened wide, then the window is made narrower
    qtbot.waitUntil(lambda: window.toml_dock.width() >= 300, timeout=3000)


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


# ---- Start hint --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, message, shown", [
    ("teacher.epochs", "'teacher.epochs' = 0 is too small; it must be at least 1.",
     "teacher.epochs = 0 is too small; it must be at least 1."),
    ("run.sweep", "run.sweep: 'x' is not a numeric setting.", "run.sweep: 'x' is not a numeric setting."),
    ("data.val_fraction", "data.val_fraction + data.test_fraction is 1; it must be below 1.",
     "data.val_fraction + data.test_fraction is 1; it must be below 1."),
    ("teacher.path", "Teacher file 'a.pt' does not exist; check teacher.path.",
     "teacher.path: Teacher file 'a.pt' does not exist; check teacher.path."),
    ("teacher.epoch", "teacher.epochs is odd.", "teacher.epoch: teacher.epochs is odd."),
    ("", "A configuration check failed.", "config: A configuration check failed."),
])
def test_hint_names_the_key_once(key, message, shown):
    text = hint_html(key, message)
    assert _plain(text) == "Start is disabled until this is fixed: " + shown
    assert f"<a href='{key}'>" in text


def test_train_hint_shows_the_key_once_under_the_buttons(window):
    hint = window.train.hint
    assert hint.isHidden()
    window.model.set("teacher.epochs", 0)
    plain = _plain(hint.text())
    assert plain.count("teacher.epochs") == 1 and "= 0 is too small" in plain
    assert not hint.isHidden()
    window.model.set("teacher.epochs", 3)
    assert hint.isHidden() and hint.text() == ""


# ---- empty plots -------------------------------------------------------------------------------------------

def _records(epochs=3):
    out = []
    for e in range(1, epochs + 1):
        out.append({"kind": "step", "stage": "distill", "epoch": e, "epochs": epochs, "step": 1, "steps": 1,
                    "global_step": e, "lr": 0.01, "total": 1.0 / e, "kd": 0.5 / e, "ce": 0.4 / e})
        out.append({"kind": "epoch", "stage": "distill", "epoch": e, "epochs": epochs, "val_acc": 0.5,
                    "lr": 0.01, "total": 1.0 / e, "kd": 0.5 / e, "ce": 0.4 / e})
    return out


def _run_folder(project, name, records, status="stopped"):
    folder = project.runs_dir / name
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"status": status, "started": name}), encoding="utf-8")
    if records:
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return folder


def test_placeholder_instead_of_empty_plots_until_there_are_curves(window):
    train = window.train
    window.show_page("Train")
    assert train.plot_area.empty and train.plot_area.placeholder.text() == NO_RUN_TEXT
    assert train.plot_area.placeholder.isVisible() and not train.plots.isVisible()
    project = window.model.project
    empty = _run_folder(project, "20200101-000000", [])
    full = _run_folder(project, "20200102-000000", _records())
    train.history.reload(project)
    train.history.select_paths([empty])
    assert train.plot_area.empty and "no metrics" in train.plot_area.placeholder.text()
    train.history.select_paths([full])
    assert not train.plot_area.empty and train.plots.isVisible() and train.plots.curve_count() > 0
    train.history.select_paths([])
    assert train.plot_area.empty and "Select a run" in train.plot_area.placeholder.text()


def test_placeholder_goes_as_soon_as_a_live_run_draws(window, qtbot, tmp_path):
    from kdstudio.gui.pages.live import LiveRun
    train = window.train
    window.show_page("Train")
    window.run.live = LiveRun(window.model.cfg.copy(), tmp_path / "run")  # as a run's start makes it
    train.plots.show_series([train.live_series])
    assert train.plot_area.empty
    meta = ("epoch", "epochs", "step", "steps", "global_step", "lr")
    batch = [ev.Event(ev.STEP, "distill", {**{k: r[k] for k in meta}, "samples_per_s": 100.0,
                                           "terms": {k: r[k] for k in ("total", "kd", "ce")}})
             for r in _records(2) if r["kind"] == "step"]
    window.run.runner.events.emit(batch)  # a batch from the run's thread
    qtbot.waitUntil(lambda: not train.plot_area.empty, timeout=3000)
    assert train.plots.curve_count() > 0
