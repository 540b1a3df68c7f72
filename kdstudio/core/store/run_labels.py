"""A run's own name and note: `run.json` ({"name": ..., "note": ...}) in the run folder's root.

Written only by the person (the runs table, `kdstudio label`), never by the engine, so a resume or a re-evaluation
keeps it. A run folder without the file (or with a damaged one) has no name: readers show its timestamp instead.
Torch-free and Qt-free, so the window and the CLI read it before torch has loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import KDError
from .files import RunDir, atomic_write_json
MAX_NAME = 80
MAX_NOTE = 2000


def label_path(run_dir: str | Path) -> Path:
    """Where a run folder keeps its name and note."""
    return RunDir(run_dir).label


def read_label(run_dir: str | Path) -> dict:
    """{"name": str, "note": str} of a run folder; both "" when it has none (no file, or a damaged one)."""
    try:
        raw = json.loads(label_path(run_dir).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raw = {}
    raw = raw if isinstance(raw, dict) else {}
    return {k: raw[k].strip() if isinstance(raw.get(k), str) else "" for k in ("name", "note")}


def display_name(run_dir: str | Path, fallback: str) -> str:
    """The run's name, or `fallback` (its timestamp) when it has none."""
    return read_label(run_dir)["name"] or fallback


def write_label(run_dir: str | Path, name: str | None = None, note: str | None = None) -> dict:
    """Set the name and/or the note (None keeps what is there; "" clears it) and return the label as written.
    A name on several lines or too long, or a folder that is not a run, raises KDError with one sentence."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise KDError(f"'{folder}' is not a run folder; nothing was named.")
    label = read_label(folder)
    if name is not None:
        name = name.strip()
        if "\n" in name or "\r" in name:
            raise KDError("A run's name is one line; put the rest in its note.")
        if len(name) > MAX_NAME:
            raise KDError(f"A run's name is at most {MAX_NAME} characters (this one has {len(name)}); put the rest "
                          "in its note.")
        label["name"] = name
    if note is not None:
        note = note.strip()
        if len(note) > MAX_NOTE:
            raise KDError(f"A run's note is at most {MAX_NOTE} characters (this one has {len(note)}).")
        label["note"] = note
    atomic_write_json(label_path(folder), label)
    return label
