"""A lock file per run folder: one process writes a run at a time; a lock left by a crash is taken over.

The lock holds the owner's PID, host and start time. A second process (a second `--resume`, a second window) is
refused with who holds it. On the same host a lock whose process is gone is stale and taken over; a lock from
another host is only reported (its process cannot be checked from here). Torch-free.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from pathlib import Path

from ..errors import KDError

LOCK_NAME = ".kdstudio.lock"
_HELD: set[str] = set()  # tokens of the locks this process holds now (a moved folder leaves its lock behind)


class LockedError(KDError):
    """The folder is in use by another live process; `holder` says which."""

    def __init__(self, message: str, holder: dict):
        super().__init__(message)
        self.holder = holder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True


class FolderLock:
    """Exclusive use of `folder` while held (`with FolderLock(folder, "run folder"):`)."""

    def __init__(self, folder: Path, what: str = "run folder"):
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_NAME
        self.held, self.token = False, ""

    def holder(self) -> dict | None:
        """Who holds the lock: {"pid", "host", "started"}; {} for an unreadable lock file; None when unlocked."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def stale(self, holder: dict) -> bool:
        """A lock of this host whose process is gone, or a damaged lock file (a crash while writing it)."""
        if not holder:
            return True
        pid = holder.get("pid")
        if holder.get("host") != socket.gethostname():
            return False
        if pid == os.getpid():  # ours: stale unless this process still holds it (a renamed folder took it along)
            return holder.get("token") not in _HELD
        return not isinstance(pid, int) or not _alive(pid)

    def acquire(self) -> "FolderLock":
        """Take the lock, taking over a stale one; LockedError with one sentence when a live process holds it."""
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": _dt.datetime.now().isoformat(timespec="seconds"), "token": os.urandom(8).hex()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is None:
                    continue  # released meanwhile
                if not self.stale(holder):
                    where = "here" if holder.get("host") == socket.gethostname() else f"on {holder.get('host')}"
                    raise LockedError(
                        f"The {self.what} '{self.folder}' is in use by process {holder.get('pid')} {where} since "
                        f"{holder.get('started')}; wait for it to finish or stop it (if that process is gone, "
                        f"delete '{self.path}').", holder)
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            except OSError as e:
                raise KDError(f"Cannot lock the {self.what} '{self.folder}' ({e.strerror or e}); choose a folder "
                              "you can write to.") from None
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(me, fh)
            self.held, self.token = True, me["token"]
            _HELD.add(self.token)
            return self
        raise LockedError(f"The {self.what} '{self.folder}' is being locked by another process; try again.", {})

    def release(self) -> None:
        """Give the lock back (only ours is removed)."""
        if self.held:
            holder = self.holder()
            if holder and holder.get("token") == self.token:
                self.path.unlink(missing_ok=True)
            _HELD.discard(self.token)
            self.held = False

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
