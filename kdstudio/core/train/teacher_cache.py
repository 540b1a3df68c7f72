"""The teacher-output cache on disk, for streamed data: one row of logits per training sample (keyed by its
position in the training split), fp16 or fp32, in the run folder's cache/ as a raw array beside a JSON note of its
shape and how many rows are filled. Filled in one pass over the split (resumable: a stopped fill continues from
the note's count), then read as a memory map, so a 100k-sample cache costs the rows of one batch in RAM.

Under DDP it stays one file, keyed by the sample's position in the training split: each rank fills only its block
of rows (`rows`), with a note of its own, and then reads the whole file. One file rather than one per rank, since
every epoch's shuffle gives each rank samples from every block; it needs a cache folder every rank sees (always on
one machine; on a cluster, a run folder on a shared drive)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import KDError, RunStopped
from ..store.files import atomic_write_text

FILL_BATCH = 256
DTYPES = {"fp16": np.float16, "fp32": np.float32}


class DiskLogits:
    """Teacher logits of the training split on disk; `logits[idx]` gives those rows as a float32 device tensor."""

    def __init__(self, folder: Path, stage: str, n: int, dtype: str = "fp16", classes: int = 0,
                 rows: tuple[int, int] | None = None):
        self.folder, self.n, self.dtype = Path(folder), n, dtype
        self.lo, self.hi = rows or (0, n)  # the rows this process fills (a rank's block under DDP)
        self.whole = rows is None
        self.path = self.folder / f"teacher-logits-{stage}.{dtype}"
        self.note = self.folder / (f"teacher-logits-{stage}.json" if self.whole else
                                   f"teacher-logits-{stage}.rows{self.lo}-{self.hi}.json")
        self.stage = stage
        self.classes = classes  # outputs per row (0 = learnt from the first batch)
        self.map: np.memmap | None = None

    @property
    def bytes(self) -> int:
        """Size of the full cache file."""
        return self.n * self.classes * np.dtype(DTYPES[self.dtype]).itemsize

    def _filled(self) -> int:
        """The row up to which an earlier (stopped) fill of the same shape wrote this process's rows, else lo."""
        try:
            note = json.loads(self.note.read_text())
        except (OSError, ValueError):
            return self.lo
        if (note.get("n") != self.n or note.get("dtype") != self.dtype or not self.path.is_file()
                or (self.classes and note.get("classes") != self.classes)):
            return self.lo
        self.classes = int(note.get("classes", 0))
        return min(max(int(note.get("filled", 0)), self.lo), self.hi)

    def prepare_shared(self) -> None:
        """Before the ranks fill their blocks (rank 0, once): the file at its full size, kept when an earlier fill
        of the same shape left it (the blocks' notes say what is in it), else made anew without notes."""
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            if self.path.is_file() and self.path.stat().st_size == self.bytes:
                return
            for old in self.folder.glob(f"teacher-logits-{self.stage}*.json"):
                old.unlink(missing_ok=True)
            with open(self.path, "wb") as f:
                f.truncate(self.bytes)
        except OSError as e:
            raise self._disk_error(e) from None

    def visible(self) -> bool:
        """True when this process sees the file rank 0 prepared (the ranks share the cache folder)."""
        try:
            return self.path.stat().st_size == self.bytes
        except OSError:
            return False

    def fill(self, teacher_logits, batches_from, progress, control) -> int:
        """Compute the missing rows of lo..hi-1: `batches_from(start)` yields (inputs, labels, positions) from row
        `start`, `teacher_logits(x)` gives their logits; `progress(done)` after every batch. Returns rows reused.
        A block (`rows`) writes into the file `prepare_shared` made."""
        self.folder.mkdir(parents=True, exist_ok=True)
        start = self._filled()
        done = start
        if start < self.hi:
            progress(start)
            # Unbuffered: a full disk fails the write that hit it, not a later flush on close.
            with open(self.path, "r+b" if start or not self.whole else "wb", buffering=0) as f:
                for k, (x, _, pos) in enumerate(batches_from(start), 1):
                    if control.stop_requested:
                        raise RunStopped()
                    if int(pos[0]) >= self.hi:
                        break
                    if int(pos[-1]) >= self.hi:  # a batch past the block: its rows are another rank's
                        keep = int((pos < self.hi).sum())
                        x, pos = x[:keep], pos[:keep]
                    rows = teacher_logits(x).detach().float().cpu().numpy().astype(DTYPES[self.dtype])
                    self.classes = self.classes or rows.shape[1]
                    try:
                        f.seek(int(pos[0]) * rows.shape[1] * rows.itemsize)
                        data = memoryview(rows.tobytes())
                        while data:
                            data = data[f.write(data):]
                        done = int(pos[-1]) + 1
                        if k % 16 == 0:  # the note never counts rows that are not on the disk yet
                            os.fsync(f.fileno())
                            self._write_note(done)
                    except OSError as e:
                        raise self._disk_error(e) from None
                    progress(done)
                try:
                    os.fsync(f.fileno())
                except OSError as e:
                    raise self._disk_error(e) from None
            self._write_note(done)
        self.map = np.memmap(self.path, dtype=DTYPES[self.dtype], mode="r", shape=(self.n, self.classes))
        return start - self.lo

    def _write_note(self, filled: int) -> None:
        try:
            atomic_write_text(self.note, json.dumps({"n": self.n, "classes": self.classes, "dtype": self.dtype,
                                                     "filled": filled}))
        except OSError as e:
            raise self._disk_error(e) from None

    def _disk_error(self, e: OSError) -> KDError:
        what = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        return KDError(f"Writing the teacher-output cache '{self.path}' failed ({what}); it needs "
                       f"{self.bytes / 2**20:.0f} MiB: free space in the run folder's drive, or set "
                       "distill.cache_teacher = false to run the teacher every step instead.")

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows start..stop-1 as float32 (CPU)."""
        return torch.from_numpy(np.array(self.map[start:stop], dtype=np.float32))

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.map[idx.cpu().numpy()].astype(np.float32))

    def delete(self) -> None:
        """Remove the cache file and its notes (every block's)."""
        self.map = None
        for p in (self.path, self.note, *self.folder.glob(f"teacher-logits-{self.stage}.rows*.json")):
            p.unlink(missing_ok=True)
