"""The teacher-output cache on disk, for streamed data: one row of logits per training sample (keyed by its
position in the training split), fp16 or fp32, in the run folder's cache/ as a raw array beside a JSON note of its
shape and how many rows are filled. Filled in one pass over the split (resumable: a stopped fill continues from
the note's count), then read as a memory map, so a 100k-sample cache costs the rows of one batch in RAM."""

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

    def __init__(self, folder: Path, stage: str, n: int, dtype: str = "fp16", classes: int = 0):
        self.folder, self.n, self.dtype = Path(folder), n, dtype
        self.path = self.folder / f"teacher-logits-{stage}.{dtype}"
        self.note = self.folder / f"teacher-logits-{stage}.json"
        self.classes = classes  # outputs per row (0 = learnt from the first batch)
        self.map: np.memmap | None = None

    @property
    def bytes(self) -> int:
        """Size of the full cache file."""
        return self.n * self.classes * np.dtype(DTYPES[self.dtype]).itemsize

    def _filled(self) -> int:
        """Rows already written by an earlier (stopped) fill of the same shape, else 0."""
        try:
            note = json.loads(self.note.read_text())
        except (OSError, ValueError):
            return 0
        if (note.get("n") != self.n or note.get("dtype") != self.dtype or not self.path.is_file()
                or (self.classes and note.get("classes") != self.classes)):
            return 0
        self.classes = int(note.get("classes", 0))
        return int(note.get("filled", 0))

    def fill(self, teacher_logits, batches_from, progress, control) -> int:
        """Compute the missing rows: `batches_from(start)` yields (inputs, labels, positions) from row `start`,
        `teacher_logits(x)` gives their logits; `progress(done)` after every batch. Returns rows reused."""
        self.folder.mkdir(parents=True, exist_ok=True)
        start = self._filled()
        done = start
        if start < self.n:
            progress(start)
            # Unbuffered: a full disk fails the write that hit it, not a later flush on close.
            with open(self.path, "r+b" if start else "wb", buffering=0) as f:
                for k, (x, _, pos) in enumerate(batches_from(start), 1):
                    if control.stop_requested:
                        raise RunStopped()
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
        return start

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
        """Remove the cache file and its note."""
        self.map = None
        for p in (self.path, self.note):
            p.unlink(missing_ok=True)
