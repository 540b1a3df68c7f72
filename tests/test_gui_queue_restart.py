"""The run queue outlives the window: queued runs are written to queue.json, the next window shows them held (not
started) with Resume queue, and an entry that cannot run any more is one sentence. "Run 3 seeds" during a run
queues the seeds run instead."""

import json
import time

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QMessageBox, QToolButton  # noqa: E402

from kdstudio.core.store import queue_file  # noqa: E402
from kdstudio.core.store.projects import ProjectStore  # noqa: E402
from tests.conftest import close_and_delete  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402
from tests.test_gui_gain import NOISE, _finished_run  # noqa: E402


@pytest.fixture
def engine_until_stopped(monkeypatch):
    """The engine as a run that goes until Stop (the queue is what is tested, not training)."""
    from kdstudio.core.pipeline import engine
    started = []

    def run(cfg, out, control=None, **_kw):
        started.append(cfg)
        while not control.stop_requested:
            time.sleep(0.02)
        return {"status": "stopped"}
    monkeypatch.setattr(engine, "run", run)
    return started


def _start_button(window) -> QToolButton:
    window.show_page("Train")
    [button] = [b for b in window.train.controls.findChildren(QToolButton) if b.defaultAction() is window.run.start_act]
    return button


def _click(qtbot, widget) -> None:
    assert widget.isEnabled(), f"{widget.text().strip()} is disabled"
    qtbot.mouseClick(widget, Qt.LeftButton)


def _project(window, name, **overrides):
    window.panel.new_project(name)
    window.model.replace(tiny_config(**overrides))
    window.model.save_now()
    return window.model.project


def test_two_queued_runs_come_back_held_in_the_next_window(window, qtbot, monkeypatch, engine_until_stopped):
    from kdstudio.gui.main_window import MainWindow
    _project(window, "Restart")
    start = _start_button(window)
    _click(qtbot, start)
    qtbot.waitUntil(lambda: window.run.running, timeout=10_000)
    for width in (10, 12):
        window.model.set("student.width", width)
        _click(qtbot, start)  # reads "Queue" while the run goes
    assert [i.cfg.student.width for i in window.queue.items] == [10, 12]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)  # "Stop the run and quit?"
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=20_000)
    assert len(engine_until_stopped) == 1  # the closing window started no queued run

    again = MainWindow()
    again.show()
    try:
        qtbot.wait(100)  # a start would be scheduled on the event loop: give it the chance
        queue, ui = again.queue, again.queue_ui
        assert [i.cfg.student.width for i in queue.items] == [10, 12] and queue.held and not again.run.running
        assert ui.dock.isVisible() and ui.panel.resume_btn.isVisible() and ui.button.text() == "Queue · 2, held"
        assert "2 queued from the last session, held; Resume queue starts them." in ui.panel.head.text()
        assert ui.panel.list.item(0).text().startswith("1.  Restart · cnn → mlp")
        assert "Restart" in again.queue.projects()
        _click(qtbot, ui.panel.resume_btn)
        qtbot.waitUntil(lambda: again.run.running, timeout=10_000)
        assert engine_until_stopped[-1].student.width == 10 and [i.cfg.student.width for i in queue.items] == [12]
        assert [r["config"].count("width = 12") for r in
                json.loads(queue.path.read_text())["runs"]] == [1]
    finally:
        close_and_delete(qtbot, again)


def test_a_queued_run_whose_project_went_or_whose_settings_do_not_read_is_one_sentence(window, qtbot):
    from kdstudio.gui.main_window import MainWindow
    store = ProjectStore()
    kept, gone = store.create("Kept", tiny_config()), store.create("Gone", tiny_config())
    path = queue_file.queue_path()
    queue_file.write_queue([(kept, tiny_config(), 1.0), (gone, tiny_config(), 2.0)], path)
    raw = json.loads(path.read_text())
    raw["runs"].append({"project": str(kept.path), "config": "[distill]\nepochs = 'many'\n", "queued_at": 3.0})
    path.write_text(json.dumps(raw))
    store.delete(gone)
    saved, problems = queue_file.read_queue(path)
    assert [s.project.name for s in saved] == ["Kept"]
    assert problems[0] == "Queued run 2 was dropped: its project 'Gone' no longer exists."
    assert problems[1].startswith("Queued run 3 of 'Kept' was dropped: its saved settings cannot be read (")
    path.write_text("{not json")
    assert queue_file.read_queue(path)[1][0].endswith("cannot be read (Expecting property name enclosed in double "
                                                      "quotes: line 1 column 2 (char 1)); it starts empty.")

    path.write_text(json.dumps(raw))
    again = MainWindow()
    again.show()
    try:
        head = again.queue_ui.panel.head.text()
        assert "1 queued from the last session" in head and "its project 'Gone' no longer exists." in head
        assert [r["project"] for r in json.loads(path.read_text())["runs"]] == [str(kept.path)]  # written back
    finally:
        close_and_delete(qtbot, again)


def test_run_3_seeds_during_a_run_queues_the_seeds_run(window, qtbot, engine_until_stopped):
    project = _project(window, "Seeds", **{"teacher.epochs": 400})
    noisy = _finished_run(project, "20260102-030402", NOISE, seed=5)
    _click(qtbot, _start_button(window))
    qtbot.waitUntil(lambda: window.run.running, timeout=10_000)
    window.show_page("Evaluate")
    page = window.pages["Evaluate"]
    [run] = [r for r in project.runs() if r.path == noisy]
    page.show_run(run)
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: page.seeds_btn.isVisible(), timeout=2000)
    assert page.seeds_btn.text() == "Queue 3 seeds" and "A run is going" in page.seeds_btn.toolTip()
    _click(qtbot, page.seeds_btn)
    [item] = window.queue.items
    assert item.cfg.run.seeds == [5, 6, 7] and item.project.name == "Seeds" and item.cfg.distill.epochs == 1
    assert window.queue_ui.dock.isVisible() and "seeds 5, 6, 7" in window.queue_ui.panel.list.item(0).text()
    assert page.seeds_btn.text() == "3 seeds queued" and not page.seeds_btn.isEnabled()  # queued once
    assert window.run.running and len(engine_until_stopped) == 1  # the run going was not disturbed
