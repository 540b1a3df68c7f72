"""Trained teachers kept once, outside the run folders, so that no run trains the same teacher twice. Torch-free.

A store is a `teachers/` folder: in a project `<project>/teachers/`, for a run outside a project beside its run
folder (`--out runs/a` keeps them in `runs/teachers/`). Each teacher is `teachers/<id>/` with `teacher.pt` (the
weights as a complete checkpoint that `torch.load(weights_only=True)` reads) and `teacher.json` (what it was keyed
by, the run that trained it, its accuracy, when). The id is the hash of the key, so a run whose teacher settings,
data, seed and arch code are the same finds it. `teacher.json` is written last and both files are written
atomically: a crash leaves no teacher that a later run would reuse half-written.

Run folders never point into the store: a run that reuses a teacher gets its own (hard-linked) copy in its
checkpoints, so deleting a stored teacher never breaks a run, and deleting a run never deletes a teacher.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KDError
from .files import atomic_write_json

TEACHERS = "teachers"
WEIGHTS, META = "teacher.pt", "teacher.json"
ID_PATTERN = re.compile(r"[0-9a-f]{12}")
META_VERSION = 1


def store_root(out_dir: str | Path) -> Path:
    """Where the teachers of a run (or sweep) folder live: `<project>/teachers` for a project's run, else a
    `teachers/` folder beside the run folder."""
    out = Path(out_dir).resolve()
    if out.parent.name == "runs" and (out.parent.parent / "project.toml").is_file():
        return out.parent.parent / TEACHERS
    return out.parent / TEACHERS


def runs_base(root: Path) -> Path:
    """The folder that run names in teacher.json are relative to (a project's runs/, else the store's parent)."""
    parent = Path(root).parent
    return parent / "runs" if (parent / "project.toml").is_file() else parent


@dataclass
class StoredTeacher:
    """One teacher in the store, as its teacher.json describes it."""

    folder: Path
    meta: dict = field(default_factory=dict)

    id = property(lambda self: self.folder.name)
    weights = property(lambda self: self.folder / WEIGHTS)
    run = property(lambda self: str(self.meta.get("run") or "?"))
    accuracy = property(lambda self: self.meta.get("accuracy"))

    @property
    def description(self) -> str:
        """'cnn (width 8, depth 2) · 2 epochs · lr 0.002 · adamw · <data set> · seed 0'."""
        k = self.meta.get("key") or {}
        t, train, data = k.get("teacher") or {}, k.get("training") or {}, k.get("data") or {}
        shape = ", ".join(f"{n} {t[n]}" for n in ("width", "depth") if t.get(n))
        lr = t.get("lr")
        parts = [f"{t.get('arch', '?')}" + (f" ({shape})" if shape else ""), f"{t.get('epochs', '?')} epochs",
                 f"lr {lr:g}" if isinstance(lr, (int, float)) else "", str(train.get("optimizer") or ""),
                 str(self.meta.get("data_name") or data.get("source") or ""), f"seed {k.get('seed', '?')}"]
        return " · ".join(p for p in parts if p)


def _valid(meta) -> bool:
    return (isinstance(meta, dict) and isinstance(meta.get("key"), dict) and isinstance(meta.get("arch"), dict)
            and isinstance(meta.get("bytes"), int))


class TeacherStore:
    """The teachers/ folder: find, add, list, delete."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def folder(self, teacher_id: str) -> Path:
        """The folder of one id."""
        return self.root / teacher_id

    def get(self, teacher_id: str) -> StoredTeacher | None:
        """The complete teacher of that id (weights present, of the recorded size, teacher.json valid), or None."""
        if not ID_PATTERN.fullmatch(str(teacher_id)):
            return None
        folder = self.folder(teacher_id)
        try:
            meta = json.loads((folder / META).read_text(encoding="utf-8"))
            size = (folder / WEIGHTS).stat().st_size
        except (OSError, ValueError):
            return None
        if not _valid(meta) or size != meta["bytes"]:
            return None  # a weights file replaced or cut behind our back is not reused
        return StoredTeacher(folder, meta)

    def list(self) -> list[StoredTeacher]:
        """Every complete teacher, newest first."""
        if not self.root.is_dir():
            return []
        found = [t for d in self.root.iterdir() if d.is_dir() for t in [self.get(d.name)] if t is not None]
        return sorted(found, key=lambda t: str(t.meta.get("created", "")), reverse=True)

    def add(self, teacher_id: str, write_weights, meta: dict) -> StoredTeacher:
        """Store a teacher: `write_weights(path)` writes teacher.pt atomically, then teacher.json is written (the
        commit). An id already stored is kept as it is (the same key trains the same teacher)."""
        existing = self.get(teacher_id)
        if existing is not None:
            return existing
        folder = self.folder(teacher_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / META).unlink(missing_ok=True)  # a stale teacher.json must not bless the new weights early
        write_weights(folder / WEIGHTS)
        full = {"version": META_VERSION, "id": teacher_id, "created": _dt.datetime.now().isoformat(timespec="seconds"),
                **meta, "bytes": (folder / WEIGHTS).stat().st_size}
        atomic_write_json(folder / META, full)
        return StoredTeacher(folder, full)

    def users(self, teacher_id: str, runs) -> list[str]:
        """Names of the runs (projects.RunInfo) whose summary says they trained or reused this teacher."""
        out = []
        for run in runs:
            t = run.summary.get("teacher") if isinstance(run.summary.get("teacher"), dict) else {}
            if t.get("stored_id") == teacher_id:
                out.append(run.name)
        return out

    def delete(self, teacher_id: str, cfg=None) -> None:
        """Remove a stored teacher; refused while `cfg` (the project's config) picks it with teacher.reuse. The
        runs that used it keep their own copy in their checkpoints."""
        if cfg is not None and cfg.teacher.reuse == teacher_id:
            raise KDError(f"Teacher {teacher_id} is in use: this project's teacher.reuse picks it. Set "
                          "teacher.reuse to \"auto\" first, then delete it.")
        folder = self.folder(teacher_id)
        if not ID_PATTERN.fullmatch(str(teacher_id)) or folder.resolve().parent != self.root.resolve() \
                or not folder.is_dir():
            raise KDError(f"No stored teacher '{teacher_id}' in '{self.root}'; nothing was deleted.")
        (folder / META).unlink(missing_ok=True)  # first: a half-deleted folder is never taken for a teacher
        shutil.rmtree(folder)
