"""The app's own small files: where they live ($KDSTUDIO_HOME or the platform's folders) and settings.json
(window geometry, the last and recent projects)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import KDError
from .files import atomic_write_json, read_json


def home() -> Path | None:
    """$KDSTUDIO_HOME as a Path, or None when it is not set."""
    value = os.environ.get("KDSTUDIO_HOME", "").strip()
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """Where the app keeps its data (projects, the run queue): $KDSTUDIO_HOME, else the platform's user data folder."""
    base = home()
    if base is None:
        import platformdirs
        base = Path(platformdirs.user_data_dir("kdstudio", appauthor=False))
    return base


def settings_path() -> Path:
    """The JSON file with the app's settings (geometry, last and recent projects)."""
    base = home()
    if base is None:
        import platformdirs
        base = Path(platformdirs.user_config_dir("kdstudio", appauthor=False))
    return base / "settings.json"


class Settings:
    """Small JSON settings file: geometry, last project, recent projects. Corrupt files start afresh."""

    MAX_RECENT = 8

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else settings_path()
        try:
            data = read_json(self.path, default={})
        except (OSError, ValueError):
            data = {}
        self.data: dict = data if isinstance(data, dict) else {}

    def get(self, key: str, default=None):
        """A stored value."""
        return self.data.get(key, default)

    def set(self, key: str, value) -> None:
        """Store a value (call save() to write)."""
        self.data[key] = value

    @property
    def recent(self) -> list[str]:
        """Recently opened project names, most recent first."""
        value = self.data.get("recent", [])
        return [str(v) for v in value] if isinstance(value, list) else []

    def touch_recent(self, name: str) -> None:
        """Move `name` to the front of the recent list and make it the last project."""
        self.data["recent"] = ([name] + [n for n in self.recent if n != name])[:self.MAX_RECENT]
        self.data["last_project"] = name

    def forget(self, name: str) -> None:
        """Drop a project from recent (deleted or renamed)."""
        self.data["recent"] = [n for n in self.recent if n != name]
        if self.data.get("last_project") == name:
            self.data.pop("last_project", None)

    def save(self) -> None:
        """Write the settings atomically; a failure is ignored (settings are a convenience)."""
        try:
            atomic_write_json(self.path, self.data)
        except (OSError, KDError):  # atomic writes say KDError for a full disk or read-only folder
            pass
