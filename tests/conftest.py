"""Shared test set-up: no display needed (Qt offscreen) and no test touches the real user folders."""

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt
# One intra-op thread: the suite runs GUI and engine threads side by side on 2 cores, and oversubscribed
# OpenMP threads made tiny training steps ~30x slower there. Set before anything imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def kdstudio_home(tmp_path, monkeypatch):
    """A temporary KDSTUDIO_HOME (projects + settings) for every test."""
    home = tmp_path / "kdstudio_home"
    monkeypatch.setenv("KDSTUDIO_HOME", str(home))
    return home


def _delete_closed_widgets() -> None:
    """Delete now what deleteLater() left for an event loop that a test suite never runs: closed windows and their
    menus otherwise pile up, and every widget alive slows building the next window."""
    import sys
    if "PySide6.QtWidgets" not in sys.modules:
        return
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication
    if QApplication.instance() is not None:
        QApplication.sendPostedEvents(None, QEvent.DeferredDelete)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    """After pytest-qt has closed (and deleteLater'd) the widgets a test registered with qtbot.addWidget."""
    yield
    _delete_closed_widgets()


def close_and_delete(qtbot, window) -> None:
    """Stop a run still going (never leave a worker thread behind), close the window without its "a run is in
    progress" question (a modal would hang the suite), and delete it."""
    window._closing = True
    if window.train.running:
        window.train.controller.stop()
        qtbot.waitUntil(lambda: not window.train.running, timeout=120_000)
    window.close()
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
