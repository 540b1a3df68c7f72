"""The run controller the window owns: its actions and shortcuts, without the Train page."""

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")


def test_run_actions_follow_the_window_s_run_controller(window):
    window.open_initial()
    run = window.run
    assert run.state == "idle" and run.start_act.isEnabled() and not run.stop_act.isEnabled()
    assert run.start_act in window.menuBar().actions()[2].menu().actions()  # the Run menu
    assert run.start_act.shortcut().toString() == "Ctrl+R" and run.stop_act.shortcut().toString() == "Ctrl+."
    window.model.set("teacher.epochs", 0)
    assert not run.start_act.isEnabled() and "teacher.epochs" in run.blocker()
    assert run.start() is False and not run.running
