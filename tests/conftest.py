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
