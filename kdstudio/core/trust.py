"""Per-file trust for files that are programs: TorchScript, pickled full models, `file.py:factory` architectures
and the .py files of a Hugging Face model folder (trust_remote_code).

Loading one of these runs code saved in it, with the user's rights. Such a file loads only after an explicit trust
for *that file*: its resolved path and the SHA-256 of its content, so an edited or swapped file is asked about
again. Grants live in this process (the CLI's `--trust FILE` and `trust_files`, or the window's prompt, add them);
`TrustStore` remembers the window's grants per project in the app's settings folder — never inside the project,
so a project folder received from someone else cannot carry its own trust. safetensors, state_dicts (read with
`weights_only=True`) and ONNX run no code and need no trust. Torch-free.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import stat
import threading
from pathlib import Path

from .errors import KDError

# What loading each kind of file can do, said in the refusal and in the window's prompt.
KINDS = {
    "torchscript": ("a TorchScript program", "loading it runs the code saved in it"),
    "pickle": ("a pickled full model", "unpickling it runs code named in it"),
    "python": ("a Python file", "using it as an architecture runs it"),
    "remote_code": ("Python code shipped with a Hugging Face model (its config.json's auto_map names it)",
                    "loading that model imports and runs it (transformers' trust_remote_code)"),
}
CAN_DO = "which can read, change or delete any file your account can and reach the network"
SAFE_INSTEAD = {
    "torchscript": "a state_dict, .safetensors or .onnx file loads without running code",
    "pickle": "a state_dict, .safetensors or .onnx file loads without running code",
    "python": "a zoo architecture runs no code from outside KD Studio",
    "remote_code": "a model type that transformers itself ships (config.json without auto_map) loads without "
                   "running code from its folder",
}

_lock = threading.Lock()
_granted: set[tuple[str, str]] = set()  # (resolved path, sha256) trusted in this process
_generation = [0]  # bumped by every change, so caches of refused loads know to try again


class UntrustedFile(KDError):
    """A program-like file that has not been trusted; carries what the window's prompt needs."""

    def __init__(self, path: Path, kind: str, sha256: str, message: str):
        super().__init__(message)
        self.path, self.kind, self.sha256 = Path(path), kind, sha256


def _key(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def digest(path: str | Path) -> str:
    """SHA-256 of a regular file's content; KDError for a folder, FIFO or device, or a file that cannot be read."""
    p = Path(path).expanduser()
    try:
        mode = os.stat(p).st_mode
    except OSError as e:
        raise KDError(f"'{p}' cannot be read ({e.strerror or e}); check the path.") from None
    if not stat.S_ISREG(mode):  # a FIFO would block for ever, a device never end
        raise KDError(f"'{p}' is not a regular file; choose the model file itself.")
    h = hashlib.sha256()
    try:
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise KDError(f"'{p}' cannot be read ({e.strerror or e}); check its permissions.") from None
    return h.hexdigest()


def describe(kind: str, path: str | Path) -> str:
    """One sentence: what the file is and what loading it can do."""
    what, does = KINDS[kind]
    return f"'{path}' is {what}: {does}, {CAN_DO}."


def grant(path: str | Path, sha256: str | None = None) -> str:
    """Trust `path` with its current content (or the given SHA-256) in this process; returns the SHA-256."""
    sha = sha256 or digest(path)
    with _lock:
        _granted.add((_key(path), sha))
        _generation[0] += 1
    return sha


def grants() -> list[tuple[str, str]]:
    """Every (path, SHA-256) trusted in this process (handed to a run in a child process)."""
    with _lock:
        return sorted(_granted)


def revoke_all() -> None:
    """Forget every grant of this process (a project closes; tests)."""
    with _lock:
        _granted.clear()
        _generation[0] += 1


def generation() -> int:
    """A number that changes whenever a grant is added or all are forgotten."""
    return _generation[0]


def is_trusted(path: str | Path, sha256: str | None = None) -> bool:
    """Whether `path`, with its content now, has been trusted."""
    sha = sha256 or digest(path)
    with _lock:
        return (_key(path), sha) in _granted


def require(path: str | Path, kind: str) -> str:
    """Return the SHA-256 of a trusted file; UntrustedFile with one sentence (what it can do, how to trust it, the
    safe alternative) otherwise. Call before the file is opened by anything that can run its code."""
    sha = digest(path)
    if is_trusted(path, sha):
        return sha
    raise UntrustedFile(Path(path), kind, sha,
                        f"{describe(kind, path)[:-1]}; it was not loaded because it is not trusted. If you trust "
                        f"it, pass --trust {path} (or list it in trust_files), or allow it when the app asks; "
                        f"{SAFE_INSTEAD[kind]}.")


class TrustStore:
    """The grants the window remembers, per project folder, in one JSON file of the app's settings folder."""

    def __init__(self, file: Path):
        self.file = Path(file)
        self.error: str | None = None

    def _read(self) -> dict:
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError) as e:
            self.error = f"'{self.file}' cannot be read ({type(e).__name__}); no file trust was restored from it."
            return {}
        return data if isinstance(data, dict) else {}

    def entries(self, project: Path) -> list[dict]:
        """This project's remembered grants: dicts with path, sha256, kind and when."""
        rows = self._read().get(_key(project), [])
        return [r for r in rows if isinstance(r, dict) and isinstance(r.get("path"), str)
                and isinstance(r.get("sha256"), str)] if isinstance(rows, list) else []

    def apply(self, project: Path) -> int:
        """Grant this project's remembered files in this process; returns how many."""
        rows = self.entries(project)
        for r in rows:
            grant(r["path"], r["sha256"])
        return len(rows)

    def remember(self, project: Path, path: Path, kind: str, sha256: str) -> None:
        """Trust `path` with this content for `project`, now and when the project opens again."""
        from .store.files import atomic_write_json  # store is above the floor; only this write needs it
        grant(path, sha256)
        data = self._read()
        rows = [r for r in self.entries(project) if r.get("path") != _key(path)]
        rows.append({"path": _key(path), "sha256": sha256, "kind": kind,
                     "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        data[_key(project)] = rows
        atomic_write_json(self.file, data)
