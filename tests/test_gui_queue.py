"""The run queue and other projects during a run, through real clicks: Start reads "Queue" while a run goes, the
queued snapshots run one after the other, the queue can be reordered and trimmed, Stop asks whether to hold it, and
the project list stays open during a run."""

from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QMessageBox, QToolButton  # noqa: E402

from kdstudio.core import config as config_mod  # noqa: E402
from kdstudio.core.store.files import RunDir, read_json  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402

RUN_TIMEOUT_MS = 120_000
QUICK = {"distill.epochs": 1, "baseline.enabled": False}  # a queued run: seconds on a CPU
LONG = {"teacher.epochs": 400, "baseline.enabled": False}  # runs until stopped


def _button(window, action) -> QToolButton:
    window.show_page("Train")
    [button] = [b for b in window.train.controls.findChildren(QToolButton) if b.defaultAction() is action]
    return button


def _click(qtbot, widget) -> None:
    assert widget.isEnabled(), f"{widget.text().strip()} is disabled"
    qtbot.mouseClick(widget, Qt.LeftButton)


def _project(window, name, cfg):
    window.panel.new_project(name)
    window.model.replace(cfg)
    window.model.save_now()
    return window.model.project


def _start_and_wait_for_steps(window, qtbot) -> None:
    _click(qtbot, _button(window, window.run.start_act))
    assert window.run.running
    qtbot.waitUntil(lambda: ("teacher", "ce") in window.train.live_series.step, timeout=RUN_TIMEOUT_MS)


def _click_list_item(qtbot, widget, row: int) -> None:
    item = widget.item(row)
    qtbot.mouseClick(widget.viewport(), Qt.LeftButton, pos=widget.visualItemRect(item).center())


def _click_project(window, qtbot, name: str) -> None:
    names = window.panel.names()
    _click_list_item(qtbot, window.panel.list, names.index(name))


def _widths(project) -> list[int]:
    """The student width each run of the project ran with, oldest first."""
    return [config_mod.load(RunDir(Path(r.path)).config).student.width for r in reversed(project.runs())
            if RunDir(Path(r.path)).config.is_file()]  # a run that failed before the engine began has none


def test_queued_snapshots_run_one_after_the_other(window, qtbot):
    second = _project(window, "Second", tiny_config(**{**QUICK, "student.width": 8}))
    project = _project(window, "Queue", tiny_config(**{**QUICK, "distill.epochs": 2}))
    start = _button(window, window.run.start_act)
    _start_and_wait_for_steps(window, qtbot)
    assert start.text().strip().endswith("Queue") and start.isEnabled()
    window.model.set("distill.epochs", 1)
    _click(qtbot, start)                      # queued with width 16
    window.model.set("student.width", 12)
    _click(qtbot, start)                      # queued with width 12
    window.model.set("student.width", 20)     # an edit after queueing changes no queued run
    _click_project(window, qtbot, "Second")
    _click(qtbot, _button(window, window.run.start_act))  # Start reads Queue in every project during a run
    queue, ui = window.queue, window.queue_ui
    assert [i.cfg.student.width for i in queue.items] == [16, 12, 8]
    assert ui.dock.isVisible() and ui.panel.list.count() == 3 and ui.button.text() == "Queue · 3"
    assert ui.panel.list.item(0).text().startswith("1.  Queue · cnn → mlp · kd · distill 1 epoch")
    assert ui.panel.list.item(2).text().startswith("3.  Second · ")
    where = ui.panel.list.visualItemRect(ui.panel.list.item(0)).center()
    qtbot.mouseClick(ui.panel.list.viewport(), Qt.LeftButton, pos=where)  # a double-click's first press, as a hand
    qtbot.mouseDClick(ui.panel.list.viewport(), Qt.LeftButton, pos=where)
    assert window.model.project.name == "Queue"  # a queued run's project opens on a double-click
    qtbot.waitUntil(lambda: len(second.runs()) == 1 and not window.run.running and not queue.items,
                    timeout=4 * RUN_TIMEOUT_MS)
    assert [r.status for r in project.runs() + second.runs()] == ["completed"] * 4, window.run.last_error
    assert _widths(project) == [16, 16, 12] and _widths(second) == [8]
    assert [len(window.train.history.runs), ui.button.text()] == [3, "Queue · 0"]
    assert start.text().strip().endswith("Start") and window.model.project.name == "Queue"


def test_remove_move_up_and_a_stop_that_holds_the_queue(window, qtbot, monkeypatch):
    project = _project(window, "Held", tiny_config(**LONG))
    start, ui = _button(window, window.run.start_act), window.queue_ui
    _start_and_wait_for_steps(window, qtbot)
    for width in (10, 11, 12):
        window.model.replace(tiny_config(**{**QUICK, "student.width": width}))
        _click(qtbot, start)
    assert "student.width = 11" in ui.panel.list.item(1).text()  # what tells the queued runs apart
    _click_list_item(qtbot, ui.panel.list, 1)
    _click(qtbot, ui.panel.remove_btn)
    assert [i.cfg.student.width for i in window.queue.items] == [10, 12]
    _click_list_item(qtbot, ui.panel.list, 1)
    _click(qtbot, ui.panel.up_btn)
    assert [i.cfg.student.width for i in window.queue.items] == [12, 10]
    assert not ui.panel.up_btn.isEnabled()  # the moved run is first now, and still selected
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[1]) or QMessageBox.Yes)
    with qtbot.waitSignal(window.run.finished, timeout=RUN_TIMEOUT_MS):
        _click(qtbot, _button(window, window.run.stop_act))
    assert asked == ["Stop the queue too?"]
    qtbot.wait(300)
    assert not window.run.running and len(window.queue.items) == 2 and ui.panel.resume_btn.isVisible()
    assert ui.button.text() == "Queue · 2, held"
    assert [r["config"].count("width = 12") for r in read_json(window.queue.path)["runs"]] == [1, 0]  # on disk
    _click(qtbot, ui.panel.resume_btn)
    qtbot.waitUntil(lambda: window.run.running, timeout=5000)
    assert len(window.queue.items) == 1
    qtbot.waitUntil(lambda: len(project.runs()) == 3 and not window.run.running, timeout=3 * RUN_TIMEOUT_MS)
    assert [r.status for r in reversed(project.runs())] == ["stopped", "completed", "completed"]
    assert _widths(project) == [16, 12, 10]


def test_another_project_opens_and_edits_while_the_run_goes_on(window, qtbot):
    other = _project(window, "Other", tiny_config())
    runner = _project(window, "Runner", tiny_config(**LONG))
    _start_and_wait_for_steps(window, qtbot)
    run_dir = window.run.run_dir
    assert window.panel.list.isEnabled()
    _click_project(window, qtbot, "Other")
    assert window.model.project.name == "Other" and window.run.running
    assert window.panel.delete_act.isEnabled()  # no run writes into Other: it may be deleted
    field = window.pages["Teacher"].form.fields["teacher.epochs"]
    assert field.editor.isEnabled()
    for typed in ("0", "7"):
        field.editor.setFocus()
        field.editor.selectAll()
        qtbot.keyClicks(field.editor, typed)
        if typed == "0":  # a problem in the shown project blocks Queue and says so
            assert not window.run.start_act.isEnabled()
            assert "Queue is disabled until this is fixed" in window.train.controls.hint.text()
    assert window.run.start_act.isEnabled()
    window.model.save_now()
    assert config_mod.load(other.file).teacher.epochs == 7
    qtbot.waitUntil(lambda: window.windowTitle().split(" · ")[-2:-1] == ["Runner"], timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: window.train.bar.format().startswith("Runner: "), timeout=5000)  # progress stays
    assert window.train.history.runs == [] and "running" in window.panel.list.item(
        window.panel.names().index("Runner")).text()
    _click_project(window, qtbot, "Runner")  # back: the Train page shows the live run again
    assert not window.panel.delete_act.isEnabled() and not window.panel.rename_act.isEnabled()
    window.show_page("Train")
    train = window.train
    assert [Path(r.path) for r in train.history.selected()] == [run_dir]
    assert train.plots.series and train.plots.series[0] is train.live_series
    assert not train.bar.format().startswith("Runner: ")
    with qtbot.waitSignal(window.run.finished, timeout=RUN_TIMEOUT_MS):
        _click(qtbot, _button(window, window.run.stop_act))  # nothing queued: no question
    assert run_dir.parent == runner.runs_dir and read_json(run_dir / "summary.json")["status"] == "stopped"
    assert other.runs() == [] and config_mod.load(runner.file).teacher.epochs == 400


def test_closing_during_a_run_keeps_the_queue_and_starts_nothing(window, qtbot, monkeypatch):
    project = _project(window, "Closing", tiny_config(**LONG))
    _start_and_wait_for_steps(window, qtbot)
    window.model.replace(tiny_config(**QUICK))
    _click(qtbot, _button(window, window.run.start_act))
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.Yes)
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=RUN_TIMEOUT_MS)
    assert len(asked) == 1 and asked[0].endswith("The 1 queued run is kept: held until Resume queue when KD "
                                                 "Studio starts again.")
    qtbot.wait(200)
    assert not window.run.running and [r.status for r in project.runs()] == ["stopped"]
    assert len(read_json(window.queue.path)["runs"]) == 1


def test_a_stop_that_goes_on_and_a_failed_run_start_the_next(window, qtbot, monkeypatch):
    import kdstudio.core.pipeline.engine as engine
    real_run = engine.run

    def fails_for_width_11(cfg, out_dir, **kw):
        if cfg is not None and cfg.student.width == 11:
            raise RuntimeError("boom")
        return real_run(cfg, out_dir, **kw)
    project = _project(window, "Goes on", tiny_config(**LONG))
    _start_and_wait_for_steps(window, qtbot)
    monkeypatch.setattr(engine, "run", fails_for_width_11)  # the run going already called the real one
    for width in (11, 12):
        window.model.replace(tiny_config(**{**QUICK, "student.width": width}))
        _click(qtbot, _button(window, window.run.start_act))
    failures = []
    window.run.failed.connect(lambda message, _details: failures.append(message))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.No)  # stop this run only
    _click(qtbot, _button(window, window.run.stop_act))
    qtbot.waitUntil(lambda: not window.queue.items and not window.run.running
                    and window.run.last_summary is not None, timeout=3 * RUN_TIMEOUT_MS)
    assert window.run.last_summary["status"] == "completed" and _widths(project) == [16, 12]
    assert len(failures) == 1 and "RuntimeError('boom')" in failures[0]
    assert [r.status for r in reversed(project.runs())] == ["stopped", "incomplete", "completed"]
