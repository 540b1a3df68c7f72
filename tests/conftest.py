"""Shared test set-up: no display needed (Qt offscreen) and no test touches the real user folders."""

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt


@pytest.fixture(autouse=True)
def kdstudio_home(tmp_path, monkeypatch):
    """A temporary KDSTUDIO_HOME (projects + settings) for every test."""
    home = tmp_path / "kdstudio_home"
    monkeypatch.setenv("KDSTUDIO_HOME", str(home))
    return home
