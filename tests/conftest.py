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


@pytest.fixture(autouse=True)
def no_file_trust_left():
    """File trust (core/trust.py) is process-wide: each test starts and ends with none granted."""
    from kdstudio.core import trust
    trust.revoke_all()
    yield
    trust.revoke_all()


@pytest.fixture
def window(qtbot):
    """The main window, shown offscreen; a run still going at the end of the test is stopped cleanly."""
    from kdstudio.gui.app import make_app
    from kdstudio.gui.main_window import MainWindow
    make_app()
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    yield w
    w._closing = True  # pytest-qt closes the window next: never let it ask "A run is in progress" (a modal hangs)
    if w.train.running:  # never leave a worker thread behind
        w.train.controller.stop()
        qtbot.waitUntil(lambda: not w.train.running, timeout=120_000)
