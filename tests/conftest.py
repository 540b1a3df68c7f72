"""Shared test set-up: no display needed (Qt offscreen) and no test touches the real user folders."""

import os
import sys

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt
# One intra-op thread: the suite runs GUI and engine threads side by side on 2 cores, and oversubscribed
# OpenMP threads made tiny training steps ~30x slower there. Set before anything imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The window's runs go to a child process by default (gui/run_process.py); the suite keeps them in a thread of the
# test process, where tests can patch engine.run and a run does not pay a fresh interpreter's torch import.
# tests/test_gui_responsive.py runs the child explicitly.
os.environ.setdefault("KDSTUDIO_RUN_IN", "thread")


@pytest.fixture(autouse=True)
def kdstudio_home(tmp_path, monkeypatch):
    """A temporary KDSTUDIO_HOME (projects + settings) for every test."""
    home = tmp_path / "kdstudio_home"
    monkeypatch.setenv("KDSTUDIO_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def no_file_trust_left():
    """File trust (core/trust.py) is process-wide: each test starts and ends with none granted."""
    from kdstudio.core import trust
    trust.revoke_all()
    yield
    trust.revoke_all()


def _qt_app():
    """The QApplication, if a test has made one (never imports Qt itself)."""
    if "PySide6.QtWidgets" not in sys.modules:
        return None
    from PySide6.QtWidgets import QApplication
    return QApplication.instance()


def _delete_closed_widgets() -> None:
    """Delete now what deleteLater() left for an event loop that a test suite never runs: closed windows and their
    menus otherwise pile up, and every widget alive slows building the next window."""
    if _qt_app() is not None:
        from PySide6.QtCore import QEvent
        from PySide6.QtWidgets import QApplication
        QApplication.sendPostedEvents(None, QEvent.DeferredDelete)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """With a QApplication, garbage is collected as in the app: in the GUI thread only (kdstudio/gui/gcguard.py),
    never by a worker or pool thread that would delete Qt objects (that hung the suite)."""
    app = _qt_app()
    if app is not None:
        from kdstudio.gui import gcguard
        gcguard.install(app)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    """After pytest-qt has closed (and deleteLater'd) the widgets a test registered with qtbot.addWidget."""
    yield
    _delete_closed_widgets()
    if _qt_app() is not None:
        from kdstudio.gui import gcguard
        gcguard.check()  # the timer runs only in an event loop: tests without one collect here


def close_and_delete(qtbot, window) -> None:
    """Stop a run still going (never leave a worker thread behind), close the window without its "a run is in
    progress" question (a modal would hang the suite), and delete it."""
    window._closing = True
    if window.run.running:
        window.run.stop()
        qtbot.waitUntil(lambda: not window.run.running, timeout=120_000)
    window.close()
    from kdstudio.gui import tasks
    assert tasks.wait_for_tasks(60_000)  # a job of this test must not run (and report) into the next one
    window.deleteLater()
    _delete_closed_widgets()


@pytest.fixture
def window(qtbot):
    """The main window, shown offscreen; closed and deleted after the test."""
    from kdstudio.gui.app import make_app
    from kdstudio.gui.main_window import MainWindow
    make_app()
    w = MainWindow()
    w.show()
    yield w
    close_and_delete(qtbot, w)
