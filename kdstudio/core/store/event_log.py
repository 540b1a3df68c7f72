"""events.jsonl: every engine event of a run, in order, one JSON line each, so a window can follow a run that it
did not start in its own process (a torchrun of N ranks, whose rank 0 writes it) exactly as it follows one in its
own thread.

metrics.jsonl holds steps and epochs only; the window also needs the plan (RUN_STARTED), the stages, the log lines
and how the run ended (RUN_FINISHED with its summary, or RUN_FAILED), so this file holds the whole stream. The
writer flushes a batch of lines at most every FLUSH_S (at once for anything but a step): one write per batch,
whole lines only. The follower reads only the bytes added since its last read and keeps a half-written last line
for the next read. Torch-free.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .. import events as ev
from .files import write_error

FLUSH_S = 0.2  # steps are batched this long at most; every other kind is written at once


def encode(e: ev.Event) -> dict:
    """An event as one JSON-ready record (the payload nested, as Event.data gives it)."""
    return {"kind": e.kind, "stage": e.stage, "time": round(e.time, 3), "data": e.data}


def decode(record: dict) -> ev.Event | None:
    """The Event of a record; None for a kind this version does not know or a payload that does not fit."""
    kind = record.get("kind") if isinstance(record, dict) else None
    if kind not in ev.PAYLOADS or not isinstance(record.get("data"), dict):
        return None
    try:
        payload = ev.make_payload(kind, record["data"])
    except TypeError:  # a field added or dropped by another version
        return None
    return ev.Event(kind, record.get("stage"), payload, float(record.get("time") or time.time()))


class EventLogWriter:
    """Appends events to events.jsonl; steps are gathered and written together (see FLUSH_S)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lines: list[str] = []
        self._last = time.monotonic()
        try:
            self._fh = open(self.path, "a", encoding="utf-8")
            if self._fh.tell() > 0:  # a resume appends: a line cut by a crash is ended first
                with open(self.path, "rb") as fh:
                    fh.seek(-1, 2)
                    if fh.read(1) != b"\n":
                        self._fh.write("\n")
        except OSError as e:
            raise write_error(self.path, e) from None

    def write(self, e: ev.Event) -> None:
        """Record one event (written now unless it is a step inside the batching window)."""
        self._lines.append(json.dumps(encode(e), default=str) + "\n")
        if e.kind != ev.STEP or time.monotonic() - self._last >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Write the gathered lines in one piece."""
        if not self._lines:
            return
        text, self._lines = "".join(self._lines), []
        self._last = time.monotonic()
        try:
            self._fh.write(text)
            self._fh.flush()
        except OSError as err:
            raise write_error(self.path, err) from None

    def close(self) -> None:
        """Write what is left and close the file."""
        try:
            self.flush()
        finally:
            self._fh.close()


class EventFollower:
    """Reads the events a run adds to events.jsonl: only new bytes each time, a half-written last line kept for
    the next read. `from_end` starts after what the file holds now (a resumed run appends to its old events)."""

    def __init__(self, path: Path, from_end: bool = False):
        self.path = Path(path)
        self.offset = self.path.stat().st_size if from_end and self.path.is_file() else 0
        self._tail = b""

    def poll(self) -> list[ev.Event]:
        """The events whose lines were completed since the last poll (none while the file does not exist)."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        self.offset += len(chunk)
        data = self._tail + chunk
        lines = data.split(b"\n")
        self._tail = lines.pop()  # b"" after a complete last line; else the half-written one
        out = []
        for line in lines:
            try:
                e = decode(json.loads(line))
            except ValueError:  # a line cut by a crash (ended by the next writer) is skipped, as read_metrics does
                continue
            if e is not None:
                out.append(e)
        return out
