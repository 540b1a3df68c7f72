"""Fault injection for tests (docs/RELIABILITY.md): a full disk, a damaged file, a process killed at an event.

Each helper makes one fault cheap to add to a test:
- `disk_full(monkeypatch, free=0)`: every write through the store's writers (atomic writes, metrics.jsonl) fails
  with ENOSPC once `free` bytes have been written, as a real full disk would; torch never writes to disk itself
  (store.files.atomic_save_buffered), so this covers checkpoints and exports too.
- `small_tmpfs(size)`: a real, tiny tmpfs (root only; the test skips elsewhere).
- `truncated(data, at)`, `corrupt(path, at, byte)`: a file cut or changed at a chosen byte.
- `kill_at(kind, nth)`: an engine listener that SIGKILLs its own process at the nth event of a kind; run the engine
  in a subprocess with it (`run_killed`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


class _Budget:
    def __init__(self, free: int):
        self.free = free

    def spend(self, n: int) -> None:
        if n > self.free:
            self.free = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.free -= n


class _FullFile:
    """A file object whose writes fail with ENOSPC past the budget (what is within it is really written)."""

    def __init__(self, fh, budget: _Budget):
        self._fh, self._budget = fh, budget

    def write(self, data):
        self._budget.spend(len(data))
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


def disk_full(monkeypatch, free: int = 0) -> _Budget:
    """Make the store's writers meet a full disk after `free` more bytes; returns the budget (raise it to 'free
    space' again)."""
    from kdstudio.core.store import files
    budget = _Budget(free)
    real_fdopen, real_open = os.fdopen, open

    def fdopen(fd, mode="r", *a, **k):
        fh = real_fdopen(fd, mode, *a, **k)
        return _FullFile(fh, budget) if "w" in mode or "a" in mode else fh

    def open_(file, mode="r", *a, **k):
        fh = real_open(file, mode, *a, **k)
        return _FullFile(fh, budget) if "w" in mode or "a" in mode else fh

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    monkeypatch.setattr(files, "open", open_, raising=False)
    return budget


@contextlib.contextmanager
def small_tmpfs(size: str = "256k"):
    """A real tmpfs of `size` mounted on a fresh folder (root with mount rights only; else the test skips)."""
    if os.geteuid() != 0:
        pytest.skip("a real small disk needs root (mount -t tmpfs)")
    where = Path(tempfile.mkdtemp(prefix="kd-tmpfs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if done.returncode:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        where.rmdir()


def truncated(data: bytes, at: int) -> bytes:
    """The first `at` bytes of a file."""
    return data[:at]


def corrupt(path: Path, at: int, byte: int = 0xFF) -> None:
    """Overwrite one byte of `path` at offset `at`."""
    data = bytearray(Path(path).read_bytes())
    data[at] = byte
    Path(path).write_bytes(bytes(data))


def kill_at(kind: str, nth: int = 1):
    """An engine listener that SIGKILLs this process at the nth event of `kind` (e.g. "epoch", "checkpoint")."""
    seen = [0]

    def listener(event):
        if event.kind == kind:
            seen[0] += 1
            if seen[0] >= nth:
                os.kill(os.getpid(), signal.SIGKILL)
    return listener


def run_killed(config_path: Path, out: Path, kind: str, nth: int = 1, timeout: int = 300) -> int:
    """Run `config_path` into `out` in a fresh interpreter that is SIGKILLed at the nth `kind` event; returns its
    exit code (-9 when the kill happened)."""
    code = ("import sys; sys.path.insert(0, %r); from faults import kill_at; from kdstudio.core import config; "
            "from kdstudio.core.pipeline import engine; "
            "engine.run(config.load(%r), %r, on_event=kill_at(%r, %d))"
            % (str(Path(__file__).parent), str(config_path), str(out), kind, nth))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], env=env, timeout=timeout, capture_output=True).returncode
