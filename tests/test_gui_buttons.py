"""Every button that matters, clicked once as a person would (qtbot.mouseClick), with the effect a user sees: no
signal argument (clicked(bool)) may land in a parameter of the slot. Dialogs are answered by patching the static
QMessageBox / QFileDialog calls, or by finding the open menu or dialog with a timer and clicking in it."""

import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtGui import QDesktopServices  # noqa: E402
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QFileDialog, QMessageBox, QToolButton  # noqa: E402

from kdstudio.core.store import summary as summary_mod  # noqa: E402
from kdstudio.gui.pages.export_table import CHECK, FOLDER  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402

WAIT_MS = 120_000


def _project(window, cfg, name="Buttons"):
    window.panel.new_project(name)
    window.model.replace(cfg)
    window.model.save_now()
    return window.model.project


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished tiny run that wrote no exports (the tests export it), made once and copied by each test."""
    from kdstudio.core.pipeline import engine
    cfg = tiny_config(**{"distill.epochs": 1, "baseline.enabled": False, "evaluate.latency_repeats": 0,
                         "export.formats": []})
    out = tmp_path_factory.mktemp("buttons") / "run"
    assert engine.run(cfg, out)["status"] == "completed"
    return out


@pytest.fixture
def export_page(window, finished_run):
    """A project holding a copy of the finished run, its Export page shown: (project, page)."""
    import shutil
    project = _project(window, tiny_config(**{"distill.epochs": 1, "baseline.enabled": False}))
    shutil.copytree(finished_run, project.new_run_dir())
    page = window.pages["Export"]
    window.show_page("Export")
    page.reload_runs()
    assert page.export_dir() is not None
    return project, page


def _click(qtbot, button) -> None:
    assert button.isEnabled(), f"{button.text()} is disabled"
    qtbot.mouseClick(button, Qt.LeftButton)


def _click_export(qtbot, page):
    """Click Export and wait for its job; the job (None when nothing was started)."""
    _click(qtbot, page.export_btn)
    task = page.task
    if task is not None:
        qtbot.waitUntil(lambda: page.task is None, timeout=WAIT_MS)
    return task


def _later(find, act) -> None:
    """Once find() returns a widget (a menu or a modal dialog that a click opens), act on it."""
    def poll():
        w = find()
        if w is None or not w.isVisible():
            QTimer.singleShot(20, poll)
        else:
            act(w)
    QTimer.singleShot(0, poll)


def _choose_in_menu(qtbot, text: str) -> None:
    """Click the entry `text` of the popup menu that the next click opens."""
    def act(menu):
        [action] = [a for a in menu.actions() if a.text() == text]
        qtbot.mouseClick(menu, Qt.LeftButton, pos=menu.actionGeometry(action).center())
    _later(QApplication.activePopupWidget, act)


# ---- Export page -----------------------------------------------------------------------------------------

def test_export_button_asks_before_replacing_then_replaces(window, export_page, qtbot, monkeypatch):
    project, page = export_page
    exports = Path(page.export_dir()) / "exports"
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.No)
    task = _click_export(qtbot, page)  # the run wrote no files: nothing to ask about
    assert asked == [] and task is not None and task.error is None, task and task.error
    before = (exports / "student.state_dict.pt").stat().st_mtime_ns
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.No)
    assert _click_export(qtbot, page) is None  # answered No: nothing written, nothing said wrong
    assert "already holds" in asked[0] and "student.state_dict.pt" in asked[0] and not page.banner.isVisible()
    assert (exports / "student.state_dict.pt").stat().st_mtime_ns == before

    time.sleep(0.01)  # a rewritten file gets a later mtime even on a coarse clock
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.Yes)
    task = _click_export(qtbot, page)
    assert len(asked) == 2 and task is not None and task.error is None, task and task.error
    assert (exports / "student.state_dict.pt").stat().st_mtime_ns > before  # replaced, as answered
    assert not page.banner.isVisible() and "--force" not in page.banner.label.text() + page.status.text()
    # one row per file: the two files exported again are in their rows' place
    assert page.table.rowCount() == 2
    assert {page.table.item(r, FOLDER).text() for r in range(2)} == {str(exports)}
    assert all(page.table.item(r, CHECK).text() == "✓ matches" for r in range(2))


def test_an_export_with_other_formats_leaves_the_project_settings_alone(window, export_page, qtbot, tmp_path,
                                                                        monkeypatch):
    project, page = export_page
    toml_before = project.file.read_text()
    out = tmp_path / "shipped"
    page.folder.setText(str(out))
    _click(qtbot, page.format_checks["torchscript"])  # untick
    _click(qtbot, page.format_checks["safetensors"])  # tick
    assert page.chosen_formats() == ["state_dict", "safetensors"]
    task = _click_export(qtbot, page)
    assert task is not None and task.error is None, task and task.error
    assert (out / "student.safetensors").is_file() and not (out / "student.torchscript.pt").exists()
    assert window.model.cfg.export.formats == ["torchscript", "state_dict"]  # the project's formats, untouched
    assert project.file.read_text() == toml_before and not window.model.dirty
    field = window.pages["Export"].form.fields["export.formats"]
    assert [c for c, cb in field.checks.items() if cb.isChecked()] == ["torchscript", "state_dict"]
    # the table: one row per file, each with its folder
    rows = [(page.table.item(r, 1).text(), page.table.item(r, FOLDER).text()) for r in range(page.table.rowCount())]
    assert sorted(rows) == [("student.safetensors", str(out)), ("student.state_dict.pt", str(out))]

    # exported again into the same folder (answered Yes), and once into the run's exports/: rows replaced or added
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    assert _click_export(qtbot, page).error is None
    assert page.table.rowCount() == 2
    page.folder.setText(str(out / ".." / "shipped"))  # the same folder, spelled another way
    assert _click_export(qtbot, page).error is None
    assert page.table.rowCount() == 2
    page.folder.clear()
    assert _click_export(qtbot, page).error is None
    assert page.table.rowCount() == 4
    recorded = summary_mod.read(Path(page.export_dir()) / "summary.json").exports
    assert len(recorded) == 4 and len({e["path"] for e in recorded}) == 4


def test_an_int8_onnx_file_is_judged_by_its_top1_agreement(window, export_page, qtbot, tmp_path):
    pytest.importorskip("onnxruntime")
    _project_, page = export_page
    page.folder.setText(str(tmp_path / "int8"))
    page.set_choices(["state_dict", "onnx"], "int8")
    task = _click_export(qtbot, page)
    assert task is not None and task.error is None, task and task.error
    checks = {page.table.item(r, 0).text(): page.table.item(r, CHECK).text() for r in range(page.table.rowCount())
              if page.table.item(r, FOLDER).text() == str(tmp_path / "int8")}
    onnx = next(e for e in page.results if e["format"] == "onnx" and e["quantize"] == "int8")
    assert onnx["parity"] == {"metric": "top1_agreement", "min": 0.97, "ok": onnx["top1_agreement"] >= 0.97}
    assert onnx["top1_agreement"] >= 0.97  # what test_export checks of the same file
    expected = ("✓ identical predictions" if onnx["top1_agreement"] == 1.0
                else f"✓ agrees {onnx['top1_agreement']:.1%}")
    assert checks == {"onnx (int8)": expected, "state_dict (int8)": "✓ identical predictions"}
    assert not page.banner.isVisible()


def test_choose_folder_cancelled_opens_one_dialog_and_changes_nothing(window, export_page, qtbot, monkeypatch,
                                                                      tmp_path):
    _project_, page = export_page
    calls = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: calls.append("folder") or "")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: calls.append("file") or ("", ""))
    _click(qtbot, page.browse_btn)
    assert calls == ["folder"] and page.folder.text() == ""
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    _click(qtbot, page.browse_btn)
    assert page.folder.text() == str(tmp_path) and page.out_dir() == tmp_path


def test_open_folder_and_model_card_buttons_open_what_they_say(window, export_page, qtbot, monkeypatch):
    _project_, page = export_page
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(Path(url.toLocalFile())) or True)
    exports = Path(page.export_dir()) / "exports"
    assert _click_export(qtbot, page).error is None  # the run wrote no model card: this export writes one
    _click(qtbot, page.open_btn)
    _click(qtbot, page.card_btn)
    assert opened == [exports, exports / "MODEL_CARD.md"]


def test_data_path_browse_cancelled_opens_one_dialog(window, qtbot, monkeypatch):
    _project(window, tiny_config())
    window.show_page("Data")
    field = next(f for p in window.pages.values() for form in getattr(p, "forms", lambda: [])()
                 for k, f in form.fields.items() if k == "data.path")
    assert set(field.browse_buttons) == {"file", "folder"}
    calls = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: calls.append("folder") or "")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: calls.append("file") or ("", ""))
    before = window.model.cfg.data.path
    _click(qtbot, field.browse_buttons["folder"])
    assert calls == ["folder"]  # cancelled: no second dialog follows
    _click(qtbot, field.browse_buttons["file"])
    assert calls == ["folder", "file"] and window.model.cfg.data.path == before


# ---- summary: failures kept per export ---------------------------------------------------------------------

def test_a_later_export_elsewhere_keeps_an_earlier_failure(window, export_page, tmp_path):
    from kdstudio.core.outputs import artifacts
    _project_, page = export_page
    run = page.export_dir()
    first = artifacts.export_run(run, ["safetensors"], quantize="int8", out=tmp_path / "a", latency_repeats=0)
    assert first["failed"] and first["failed"][0]["format"] == "safetensors"  # safetensors holds no int8
    artifacts.export_run(run, ["safetensors"], out=tmp_path / "b", latency_repeats=0)  # a success elsewhere
    artifacts.export_run(run, ["safetensors"], quantize="int8", out=tmp_path / "a", latency_repeats=0)  # again
    failed = summary_mod.read(run / "summary.json").export_failed
    assert [(f["format"], f["quantize"], Path(f["out"])) for f in failed] == [("safetensors", "int8",
                                                                               tmp_path / "a")]

    # a file that appears between the question and the export: the window's job says so without CLI flags
    from kdstudio.core.errors import KDError
    from kdstudio.gui import tasks
    with pytest.raises(KDError) as e:
        tasks.export_run(run, ["safetensors"], tmp_path / "b", force=False)
    assert "--force" not in str(e.value) and "press Export again" in str(e.value)


# ---- Train page, history, project panel, TOML panel, plots, Evaluate -----------------------------------------

def _run_button(window, action):
    [button] = [b for b in window.train.controls.findChildren(QToolButton) if b.defaultAction() is action]
    return button


def test_start_pause_resume_stop_and_the_history_buttons(window, qtbot, monkeypatch):
    _project(window, tiny_config(**{"teacher.epochs": 400, "distill.log_every": 1}))
    window.show_page("Train")
    train, run = window.train, window.run
    _click(qtbot, _run_button(window, run.start_act))
    assert run.running
    steps = lambda: len(train.live_series.step.get(("teacher", "ce")) or [])  # noqa: E731
    qtbot.waitUntil(lambda: steps() >= 1, timeout=WAIT_MS)
    _click(qtbot, _run_button(window, run.pause_act))
    assert run.state == "paused" and _run_button(window, run.resume_act).isEnabled()
    _click(qtbot, _run_button(window, run.resume_act))
    assert run.state == "running"
    with qtbot.waitSignal(run.finished, timeout=WAIT_MS) as done:
        _click(qtbot, _run_button(window, run.stop_act))
    assert done.args[0]["status"] == "stopped"
    history, run_dir = train.history, run.run_dir
    history.select_paths([run_dir])
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(Path(url.toLocalFile())) or True)
    _click(qtbot, history.open_btn)
    assert opened == [run_dir]
    _click(qtbot, history.resume_btn)  # goes on in the same folder
    assert run.running and run.run_dir == run_dir
    with qtbot.waitSignal(run.finished, timeout=WAIT_MS):
        _click(qtbot, _run_button(window, run.stop_act))
    history.select_paths([run_dir])
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    _click(qtbot, history.delete_btn)
    assert not run_dir.exists() and history.runs == []


def test_project_new_open_and_delete_through_the_panel(window, qtbot, monkeypatch):
    panel = window.panel
    [new_btn] = [b for b in panel.findChildren(QToolButton) if b.text() == "New"]
    [project_btn] = [b for b in panel.findChildren(QToolButton) if b.text() == "Project"]

    def name_it(dialog):
        dialog.edit.clear()
        qtbot.keyClicks(dialog.edit, "First")
        qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    _choose_in_menu(qtbot, "New blank project…")
    _later(lambda: getattr(QApplication.activeModalWidget(), "edit", None) and QApplication.activeModalWidget(),
           name_it)
    qtbot.mouseClick(new_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.model.project is not None and window.model.project.name == "First")
    panel.new_project("Second")
    assert window.model.project.name == "Second"
    item = next(panel.list.item(i) for i in range(panel.list.count()) if panel.list.item(i).data(Qt.UserRole) ==
                "First")
    qtbot.mouseClick(panel.list.viewport(), Qt.LeftButton, pos=panel.list.visualItemRect(item).center())
    assert window.model.project.name == "First"
    path = window.model.project.path
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    _choose_in_menu(qtbot, "Delete…")
    qtbot.mouseClick(project_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: not path.exists())
    assert window.model.project.name == "Second" and "First" not in panel.names()


def test_toml_panel_save_and_revert_buttons(window, qtbot):
    project = _project(window, tiny_config())
    qtbot.mouseClick(window.toml_btn, Qt.LeftButton)
    panel = window.toml
    assert window.toml_dock.isVisible()
    text = panel.editor.toPlainText()
    assert "epochs = 2" in text
    head, _, tail = text.partition("[distill]\n")
    panel.editor.setPlainText(head + "[distill]\n" + tail.replace("lr = 0.002\n", "lr = 0.0123\n", 1))
    _click(qtbot, panel.apply_btn)
    assert window.model.cfg.distill.lr == pytest.approx(0.0123) and "0.0123" in project.file.read_text()
    panel.editor.setPlainText(panel.editor.toPlainText().replace("lr = 0.0123", "lr = 0.5"))
    _click(qtbot, panel.revert_btn)
    assert "lr = 0.0123" in panel.editor.toPlainText() and window.model.cfg.distill.lr == pytest.approx(0.0123)


def test_plot_buttons_and_the_evaluate_page_normalise_box(window, export_page, qtbot, monkeypatch, tmp_path):
    plots = window.train.plots
    window.show_page("Train")
    view = plots.plots["loss"].getPlotItem().getViewBox()
    view.disableAutoRange()
    _click(qtbot, plots.auto_btn)
    assert all(view.autoRangeEnabled())
    target = tmp_path / "plots"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "PNG image (*.png)"))
    _click(qtbot, plots.save_btn)
    assert (tmp_path / "plots.png").stat().st_size > 0
    ev = window.pages["Evaluate"]
    window.show_page("Evaluate")
    ev.show_run(window.model.project.runs()[0])
    charts = ev.charts
    assert charts.cm_norm.isChecked() and all("." in t.toPlainText() for t in charts._cm_texts)
    _click(qtbot, charts.cm_norm)
    assert not charts.cm_norm.isChecked() and all(t.toPlainText().isdigit() for t in charts._cm_texts)
    assert charts._cm_texts

