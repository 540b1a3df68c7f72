"""The window's run queue on disk: queue.json in the app's data folder ($KDSTUDIO_HOME, else platformdirs'
user data folder), so that queued runs outlive a restart.

Each entry is a snapshot: the project's folder and the config as TOML, taken when it was queued (later edits of the
project do not change it). Reading gives back what can still run and, for every entry that cannot (its project was
deleted or its project.toml is damaged, its snapshot does not read), one sentence. Torch-free and Qt-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .. import config as config_mod
from ..config import Config
from ..errors import ConfigError
from .files import atomic_write_json
from .projects import Project
from .settings import data_dir

QUEUE_FILE = "queue.json"
VERSION = 1


def queue_path() -> Path:
    """Where the queue is kept: $KDSTUDIO_HOME/queue.json, else in the platform's user data folder."""
    return data_dir() / QUEUE_FILE


@dataclass
class SavedRun:
    """One queued run as read back: the project it runs in, its config, when it was queued."""

    project: Project
    cfg: Config
    queued_at: float


def write_queue(entries: list[tuple[Project, Config, float]], path: Path | None = None) -> None:
    """Write the queue atomically (an empty queue is an empty list); a full disk raises KDError (one sentence)."""
    runs = [{"project": str(p.path), "config": config_mod.dumps(cfg), "queued_at": float(at)}
            for p, cfg, at in entries]
    atomic_write_json(path or queue_path(), {"version": VERSION, "runs": runs})


def read_queue(path: Path | None = None) -> tuple[list[SavedRun], list[str]]:
    """(the queued runs that can still run, one sentence for each that cannot); ([], []) without a file."""
    path = path or queue_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [], []
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return [], [f"The saved run queue '{path}' cannot be read ({getattr(e, 'strerror', None) or e}); it starts "
                    "empty."]
    runs = raw.get("runs") if isinstance(raw, dict) else None
    if not isinstance(runs, list):
        return [], [f"The saved run queue '{path}' is not a queue this version writes; it starts empty."]
    saved, problems = [], []
    for i, entry in enumerate(runs, start=1):
        entry = entry if isinstance(entry, dict) else {}
        folder = Path(str(entry.get("project") or "?"))
        project = Project(folder)
        if not project.file.is_file():
            problems.append(f"Queued run {i} was dropped: its project '{folder.name}' no longer exists.")
            continue
        if project.reload().damaged:
            problems.append(f"Queued run {i} was dropped: the project.toml of '{folder.name}' is damaged.")
            continue
        text = entry.get("config")
        try:
            if not isinstance(text, str) or not text.strip():  # every key has a default: "" would read as one
                raise ConfigError("they are missing")
            cfg = config_mod.loads(text, where=f"queued run {i}")
        except ConfigError as e:
            problems.append(f"Queued run {i} of '{folder.name}' was dropped: its saved settings cannot be read "
                            f"({str(e).rstrip('.')}).")
            continue
        at = entry.get("queued_at")
        saved.append(SavedRun(project, cfg, float(at) if isinstance(at, (int, float)) else 0.0))
    return saved, problems
