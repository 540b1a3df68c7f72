"""Files on disk: atomic writes and the run-folder layout."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import KDError


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_FILE_MODE = 0o666 & ~_umask()  # mkstemp makes 0600 files; finished files get the mode open() would give


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def write_error(path: Path, e: OSError, needed: int | None = None) -> KDError:
    """One sentence for a failed write of `path`: a full disk (with what was needed), a read-only or forbidden
    folder, or the OS's reason; the previous file, if any, is intact (every writer here is atomic)."""
    path = Path(path)
    if e.errno in DISK_FULL:
        need = f": {max(needed / 1e6, 0.1):.1f} MB needed" if needed else ""
        return KDError(f"The disk holding '{path.parent}' is full{need}; free some space and try again (nothing "
                       f"half-written was left, and the previous '{path.name}' is intact).")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return KDError(f"Cannot write '{path}' ({e.strerror}); choose a folder you can write to (nothing "
                       "half-written was left).")
    return KDError(f"Cannot write '{path}' ({e.strerror or e}); nothing half-written was left.")


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (the folder's entry), where the OS allows opening a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _replacing(path: Path, needed: int | None = None):
    """A temp file beside `path` (yielded) that replaces `path` when the block ends well: fsynced, renamed over it,
    the folder fsynced. A failure anywhere leaves no temp file and the previous file intact; a full disk or a
    read-only folder raises KDError with one sentence (write_error), also when a library reports it its own way."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise write_error(path, e, needed) from None
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise write_error(path, e, needed) from None
        if isinstance(e, Exception) and _is_disk_full(e):
            raise write_error(path, OSError(errno.ENOSPC, "No space left on device"), needed) from None
        raise


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write bytes to `path` via a temp file in the same folder, fsync and a rename: never a half file. A failed
    write (disk full, read-only) leaves no temp file and raises KDError with one sentence (write_error)."""
    with _replacing(path, len(data)) as tmp:
        with os.fdopen(os.open(tmp, os.O_WRONLY), "wb") as fh:
            fh.write(data)
            fh.flush()


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write JSON (indented) atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save_buffered(path: Path, writer) -> None:
    """Call writer(buffer) on an in-memory file, then write its bytes atomically. For torch.save / torch.jit.save:
    their C++ writer aborts the whole process on a full disk (std::__ios_failure, exit 134), so they never write
    to the disk themselves; our write raises KDError with one sentence instead (atomic_write_bytes)."""
    buf = io.BytesIO()
    writer(buf)
    atomic_write_bytes(path, buf.getbuffer())


def _is_disk_full(e: BaseException) -> bool:
    """A library's own write failed for lack of space (torch raises RuntimeError, not OSError)."""
    text = str(e).lower()
    return (isinstance(e, OSError) and e.errno in DISK_FULL) or "no space left" in text or \
        "file write failed" in text or "enospc" in text


def atomic_save_with(path: Path, writer) -> None:
    """Call writer(tmp_path), fsync, then rename onto `path`; for libraries that write files themselves. A failed
    write leaves no temp file; a full disk or read-only folder raises KDError with one sentence."""
    with _replacing(path) as tmp:
        writer(tmp)


def read_json(path: Path, default: Any = None) -> Any:
    """Parse a JSON file, or return `default` when it is missing."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


def read_metrics(path: Path) -> list[dict]:
    """All records of a metrics.jsonl file (a torn last line from a crash is skipped)."""
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass
    except FileNotFoundError:
        pass
    return out


# A sweep folder: the config as given, every per-seed number and the aggregates, the table; one RunDir per point
# and seed below it (`<point>/seed-<s>/`).
SWEEP_TOML, SWEEP_JSON, SWEEP_MD = "sweep.toml", "sweep.json", "sweep.md"


class RunDir:
    """The run-folder layout: config.toml, metrics.jsonl, events.jsonl, summary.json, evaluation.json, log.txt,
    checkpoints/, exports/ (every reader and writer of a run folder names its files through this)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    config = property(lambda self: self.root / "config.toml")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    summary = property(lambda self: self.root / "summary.json")
    log = property(lambda self: self.root / "log.txt")
    checkpoints = property(lambda self: self.root / "checkpoints")
    exports = property(lambda self: self.root / "exports")
    evaluation = property(lambda self: self.root / "evaluation.json")
    label = property(lambda self: self.root / "run.json")  # the person's name and note (store/run_labels.py)
    events = property(lambda self: self.root / "events.jsonl")  # every engine event, in order (event_log.py)
    launch_log = property(lambda self: self.root / "torchrun.log")  # a window's torchrun: its output (run_torchrun)

    def has_checkpoints(self) -> bool:
        """True when any stage left a checkpoint (a run that can be resumed)."""
        return self.checkpoints.is_dir() and any(self.checkpoints.glob("*.pt"))

    def create(self) -> "RunDir":
        """Make the folders; a clear KDError when the location is not writable."""
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            self.exports.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise KDError(f"Cannot write to the output folder '{self.root}' ({e.strerror or e}); "
                          "choose another folder with --out.") from None
        return self

    def checkpoint(self, stage: str) -> Path:
        """Path of a stage's latest checkpoint."""
        return self.checkpoints / f"{stage}.pt"


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


class JsonlWriter:
    """Appends one JSON object per line; each line is flushed whole so a crash leaves whole lines only."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._fh = open(path, "a", encoding="utf-8")
            torn = self._fh.tell() > 0 and not _ends_with_newline(self.path)
            if torn:  # a crash cut the last line: end it, so the next record is not glued to it and lost
                self._fh.write("\n")
                self._fh.flush()
        except OSError as e:
            raise write_error(self.path, e) from None

    def write(self, record: dict) -> None:
        """Append one record (a full disk: KDError with one sentence)."""
        try:
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()
        except OSError as e:
            raise write_error(self.path, e) from None

    def close(self) -> None:
        """Close the file."""
        self._fh.close()
