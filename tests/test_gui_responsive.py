"""A window that stays responsive while it trains: the training thread steps aside while the plots paint, a hidden
Train page draws no curves, and the engine can run in a child process (KDSTUDIO_RUN_IN=process)."""

import os
import threading

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from kdstudio.core import events, trust  # noqa: E402
from kdstudio.gui import priority, run_process  # noqa: E402
from kdstudio.gui.worker import RunThread  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402

RUN_TIMEOUT_MS = 120_000


def test_a_step_waits_while_the_window_holds_and_goes_on_after(monkeypatch):
    monkeypatch.setattr(priority, "MAX_WAIT_S", 30.0)  # only the end of the hold can let the step go
    control, seen = priority.YieldingControl(), []
    before = priority.steps_waited()

    def step():
        control.wait_if_paused()
        seen.append(priority.holding())

    with priority.hold():
        with priority.hold():  # nested holds end with the outermost
            worker = threading.Thread(target=step)
            worker.start()
            while priority.steps_waited() == before:  # the step is waiting now
                worker.join(0.001)
        assert priority.holding() and not seen
    worker.join(10)
    assert seen == [False] and not priority.holding()


def test_no_wait_once_stop_is_requested_nor_for_a_hold_outside_the_gui_thread():
    control = priority.YieldingControl()
    control.stop()
    with priority.hold():
        before = priority.steps_waited()
        control.wait_if_paused()  # returns at once: a stop never waits for the window
        assert priority.steps_waited() == before
    done = []
    threading.Thread(target=lambda: (priority.hold().__enter__(), done.append(priority.holding()))).start()
    while not done:
        threading.Event().wait(0.001)
    assert done == [False]


def test_a_hidden_train_page_draws_no_curves_and_catches_up_when_shown(window, qtbot, monkeypatch):
    window.panel.new_project("Tiny")
    window.model.replace(tiny_config(**{"distill.epochs": 1, "baseline.enabled": False}))
    window.model.save_now()
    train = window.train
    refreshes, empty = [], []
    real_refresh = train.plots.refresh_staggered
    monkeypatch.setattr(train.plots, "refresh_staggered", lambda: (refreshes.append(1), real_refresh()))
    window.run.events.connect(lambda _batch: empty.append(train.plot_area.empty))
    window.show_page("Data")
    assert window.run.start()
    qtbot.waitUntil(lambda: not window.run.running, timeout=RUN_TIMEOUT_MS)
    assert window.run.last_error is None, window.run.last_error
    assert refreshes == [] and empty and all(empty)  # no curve drawn while the page was hidden
    window.show_page("Train")
    qtbot.waitUntil(lambda: train.plots.curve_count() > 0, timeout=5000)


def _run(qtbot, cfg, folder, during=None):
    """A run through RunThread; `during(runner, seen_kinds)` is called on each event batch."""
    runner, kinds = RunThread(), []

    def on_batch(batch):
        kinds.extend(e.kind for e in batch)
        if during:
            during(runner, kinds, batch)
    runner.events.connect(on_batch)
    outcome = {}
    runner.finished.connect(lambda s: outcome.update(summary=s))
    runner.failed.connect(lambda m, d: outcome.update(message=m))
    runner.start(cfg, folder)
    assert isinstance(runner.worker, run_process.ProcessWorker)
    qtbot.waitUntil(lambda: not runner.is_active(), timeout=RUN_TIMEOUT_MS)
    return outcome, kinds


def test_a_run_in_a_child_process_delivers_its_events_and_summary(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("KDSTUDIO_RUN_IN", "process")
    cfg = tiny_config(**{"distill.epochs": 1, "baseline.enabled": False})
    trusted = tmp_path / "arch.py"
    trusted.write_text("# a file the person trusted in the window\n")
    trust.grant(trusted)
    outcome, kinds = _run(qtbot, cfg, tmp_path / "run")
    assert outcome.get("summary", {}).get("status") == "completed", outcome
    assert trust.grants() == [(str(trusted.resolve()), trust.digest(trusted))]  # handed to the child with its args
    assert kinds[0] == events.LOG and events.RUN_STARTED in kinds and events.STEP in kinds
    assert kinds.count(events.RUN_FINISHED) == 1
    assert (tmp_path / "run" / "summary.json").is_file()


def test_pause_resume_and_stop_reach_the_child(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("KDSTUDIO_RUN_IN", "process")
    said = []

    def during(runner, kinds, batch):
        said.extend(e.data.get("message") for e in batch if e.kind == events.LOG)
        if events.STEP in kinds and runner.state == "running" and "Paused." not in said:
            runner.pause()
        elif "Paused." in said and runner.state == "paused":
            runner.resume()
            runner.stop()
    outcome, _ = _run(qtbot, tiny_config(**{"teacher.epochs": 400}), tmp_path / "run", during)
    assert "Paused." in said
    assert outcome.get("summary", {}).get("status") == "stopped", outcome
    assert (tmp_path / "run" / "checkpoints" / "teacher.pt").is_file()


def test_the_window_runs_in_a_child_by_default_and_the_environment_chooses(monkeypatch):
    monkeypatch.delenv("KDSTUDIO_RUN_IN", raising=False)
    assert run_process.worker_class() is run_process.ProcessWorker
    monkeypatch.setenv("KDSTUDIO_RUN_IN", "thread")
    assert run_process.worker_class() is not run_process.ProcessWorker
    monkeypatch.setenv("KDSTUDIO_RUN_IN", "Process ")
    assert run_process.worker_class() is run_process.ProcessWorker
    monkeypatch.setenv("KDSTUDIO_RUN_NICE", "2")
    assert run_process.child_nice() == 2
    monkeypatch.setenv("KDSTUDIO_RUN_NICE", "high")  # not a number: the default
    assert run_process.child_nice() == run_process.NICE


def _die(conn, cfg, out_dir, resume, grants=(), nice=0):
    """A child that ends without a word (as a crash in native code would)."""
    os._exit(3)


def _reports_then_hangs(conn, cfg, out_dir, resume, grants=(), nice=0):
    """A child that says it is done and then never exits (as a stuck worker thread in it would)."""
    import time
    conn.send(("done", {"status": "completed"}))
    time.sleep(600)


def test_a_child_that_reports_but_does_not_exit_is_ended(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("KDSTUDIO_RUN_IN", "process")
    monkeypatch.setattr(run_process, "_child", _reports_then_hangs)
    monkeypatch.setattr(run_process, "EXIT_GRACE_S", 0.5)
    outcome, kinds = _run(qtbot, tiny_config(), tmp_path / "run")
    assert outcome == {"summary": {"status": "completed"}} and kinds == []


def test_a_child_that_dies_is_one_sentence(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("KDSTUDIO_RUN_IN", "process")
    monkeypatch.setattr(run_process, "_child", _die)
    outcome, kinds = _run(qtbot, tiny_config(), tmp_path / "run")
    assert kinds == [] and "summary" not in outcome
    assert outcome["message"].startswith("The training process ended unexpectedly (exit code 3)")
