"""Streamed splits: inputs decoded per batch by DataLoader worker processes, for data sets too big to keep resident.

A `StreamedInputs` stands where a split's input tensor stands in a DataBundle: it has a length, a `shape`, `dim()`,
and slicing (`x[:n]` decodes those n samples in this process: example inputs, calibration, export parity); bulk
passes go through `batches()` (evaluation) or `TrainStream` (training: the main process owns the order, a batch
sampler over the saved permutation, so a stopped run resumes mid-epoch exactly). Decoding, resizing and the
normalisation run in the workers; a file that cannot be read comes back as one sentence that names it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import KDError

WORKER_TIMEOUT_S = 300  # a worker silent this long is stuck (a hung network drive); the run stops with a sentence


def default_workers() -> int:
    """Decoding workers when data.workers = -1: half the cores (at least 1, at most 8); the other half trains."""
    return max(1, min(8, (os.cpu_count() or 1) // 2))


def free_ram_bytes() -> int:
    """Memory the OS can give this process now (MemAvailable on Linux; psutil elsewhere when installed)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def memory_budget(cfg) -> tuple[int, str]:
    """The most decoded data the resident path may hold, and where the figure comes from."""
    gb = cfg.data.memory_budget_gb
    if gb > 0:
        return int(gb * 2**30), "data.memory_budget_gb"
    # Reading a folder whole peaks at ~3.6x its decoded size (uint8 images, their stack, the float tensor, the split
    # copies, the normalised copies; measured: +1.68 GB for 469 MB), so an eighth keeps that peak under half.
    free_ram = free_ram_bytes()
    ram = free_ram // 8
    where = f"an eighth of the {free_ram / 2**30:.1f} GB of free RAM"
    gpu = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
    if gpu:
        free, _ = torch.cuda.mem_get_info()
        if free // 4 < ram:
            return free // 4, f"a quarter of the {free / 2**30:.1f} GB of free GPU memory"
    return ram, where


def choose_mode(cfg, n: int, shape: tuple, what: str = "images") -> tuple[str, str]:
    """(mode, reason): data.mode, or for "auto" resident when n decoded float32 samples of `shape` fit the budget
    (streamed whatever the size when data.augment is a per-sample kind, which runs in the workers)."""
    from .augment import SAMPLE_KINDS
    decoded = n * int(np.prod(shape)) * 4
    size = f"{n:,} {what} × {'×'.join(map(str, shape))} = {fmt_bytes(decoded)}"
    if cfg.data.mode != "auto":
        return cfg.data.mode, f"{cfg.data.mode}: data.mode = \"{cfg.data.mode}\" ({size})"
    if cfg.data.augment in SAMPLE_KINDS:
        return "streamed", (f"streamed: data.augment = \"{cfg.data.augment}\" augments each sample in the data "
                            f"workers ({size})")
    budget, where = memory_budget(cfg)
    if decoded <= budget:
        return "resident", f"resident: {size} fits the {fmt_bytes(budget)} budget ({where})"
    return "streamed", f"streamed: {size} would not fit the {fmt_bytes(budget)} budget ({where})"


def fmt_bytes(n: float) -> str:
    """1.5 GB, 320 MB, 12 KB."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


class SampleReader:
    """Reads one sample of a source by its position, as a float32 (C, H, W) or (F,) tensor before normalisation;
    raises KDError naming the file when it cannot. Subclasses are picklable (they travel to the workers)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, i: int) -> torch.Tensor:
        """Sample `i`, decoded."""
        raise NotImplementedError


@dataclass
class _Norm:
    mean: torch.Tensor | None
    std: torch.Tensor | None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            return x
        shape = (-1,) + (1,) * (x.dim() - 1)
        return (x - self.mean.view(shape)) / self.std.view(shape)


class _Items(torch.utils.data.Dataset):
    """The Dataset the DataLoader indexes: split positions (or (epoch, position) pairs when each sample is
    augmented) → (normalised input, label, position, error). With data.skip_unreadable an unreadable file becomes a
    blank (zero) input, so batches and labels stay aligned."""

    def __init__(self, reader: SampleReader, index: np.ndarray, y: torch.Tensor, norm: _Norm, skip: bool,
                 shape: tuple, augment=None):
        self.reader, self.index, self.y, self.norm, self.skip, self.shape = reader, index, y, norm, skip, shape
        self.augment = augment  # data.augment.SampleAugment or None

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key):
        epoch, i = key if isinstance(key, tuple) else (None, key)
        try:
            x = self.reader.read(int(self.index[i]))
            if self.augment is not None and epoch is not None:
                x = self.augment(x, epoch, int(i))
            x = self.norm(x)
        except KDError as e:
            if not self.skip:
                raise
            return torch.zeros(self.shape), int(self.y[i]), i, str(e)
        return x, int(self.y[i]), i, ""


def _collate(items):
    """Stack a batch; carry its positions and the sentences of the files that were skipped."""
    return (torch.stack([t[0] for t in items]), torch.tensor([t[1] for t in items], dtype=torch.long),
            torch.tensor([t[2] for t in items], dtype=torch.long), [t[3] for t in items if t[3]])


def worker_failure(e: BaseException) -> KDError:
    """A DataLoader failure as one sentence: the KDError a worker raised (its file named), or a worker that died."""
    text = str(e)
    if isinstance(e, KDError) and "Traceback" not in text:
        return e
    for line in reversed(text.splitlines()):
        if "KDError: " in line or "ConfigError: " in line:
            return KDError(line.split("Error: ", 1)[1])
    if "killed by signal" in text or "exited unexpectedly" in text:
        return KDError(f"A data worker process died ({text.splitlines()[0]}), most often for lack of memory; lower "
                       "data.workers or data.batch_size, or set data.workers = 0 to decode in the training process.")
    if "timed out" in text:
        return KDError(f"A data worker sent nothing for {WORKER_TIMEOUT_S} s (a file on a stalled drive?); check the "
                       "data folder's drive, or set data.workers = 0 to decode in the training process.")
    return KDError(f"Reading a batch failed ({text.splitlines()[0] if text else type(e).__name__}); set "
                   "data.workers = 0 to see the cause in this process.")


class StreamedInputs:
    """One split's inputs, decoded on demand (see the module docstring)."""

    def __init__(self, reader: SampleReader, index: np.ndarray, y: torch.Tensor, sample_shape: tuple, *,
                 mean=None, std=None, workers: int = -1, prefetch: int = 2, skip_unreadable: bool = False,
                 where: str = ""):
        self.reader, self.index, self.y = reader, np.asarray(index, dtype=np.int64), y
        self.sample_shape = tuple(sample_shape)
        self.norm = _Norm(None if mean is None else torch.as_tensor(mean, dtype=torch.float32),
                          None if std is None else torch.as_tensor(std, dtype=torch.float32))
        self.workers = default_workers() if workers < 0 else workers
        self.prefetch, self.skip_unreadable, self.where = prefetch, skip_unreadable, where
        self.skipped: list[str] = []  # sentences of files skipped so far (data.skip_unreadable)

    # ---- what a tensor offers ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> torch.Size:
        """(N, *sample shape), like a tensor's."""
        return torch.Size((len(self.index), *self.sample_shape))

    def dim(self) -> int:
        """Dimensions of the split as a tensor would have them."""
        return 1 + len(self.sample_shape)

    def to(self, *args, **kwargs) -> "StreamedInputs":
        """Streamed inputs stay where they are; batches move to the device as they are read."""
        return self

    @property
    def decoded_bytes(self) -> int:
        """Size of the split were it decoded whole as float32."""
        return len(self.index) * int(np.prod(self.sample_shape)) * 4

    def set_normalisation(self, mean, std) -> None:
        """Normalise every sample by these per-channel values (in the workers)."""
        self.norm = _Norm(torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32))

    def __getitem__(self, key) -> torch.Tensor:
        """Decode the samples at `key` (an index, a slice or positions) here, in this process: for a few only."""
        if isinstance(key, (int, np.integer)):
            return self[[int(key)]][0]
        pos = np.arange(len(self.index))[key] if isinstance(key, slice) else np.asarray(
            key.cpu() if isinstance(key, torch.Tensor) else key).reshape(-1)
        items = _Items(self.reader, self.index, self.y, self.norm, self.skip_unreadable, self.sample_shape)
        x = [items[int(i)][0] for i in pos]
        return torch.stack(x) if x else torch.empty((0, *self.sample_shape))

    def subset(self, start: int, stop: int) -> "StreamedInputs":
        """Positions start..stop-1 of this split as streamed inputs of their own (the same reader and normalisation;
        a rank's part of a split under DDP)."""
        part = StreamedInputs.__new__(StreamedInputs)
        part.__dict__.update(self.__dict__)
        part.index, part.y = self.index[start:stop], self.y[start:stop]
        part.skipped = self.skipped  # files skipped in the part are the split's
        return part

    # ---- bulk passes ----------------------------------------------------------------------------------------
    def loader(self, batch_sampler, *, pin: bool = False, persistent: bool = False, augment=None):
        """A DataLoader over this split for `batch_sampler` (an iterable of position lists, or of (epoch, position)
        lists when `augment`, a SampleAugment, augments each sample)."""
        items = _Items(self.reader, self.index, self.y, self.norm, self.skip_unreadable, self.sample_shape, augment)
        extra = {}
        if self.workers > 0:
            extra = {"prefetch_factor": self.prefetch, "persistent_workers": persistent,
                     "timeout": WORKER_TIMEOUT_S}
        return torch.utils.data.DataLoader(items, batch_sampler=batch_sampler, num_workers=self.workers,
                                           collate_fn=_collate, pin_memory=pin, **extra)

    def batches(self, batch_size: int = 512, device: torch.device | None = None, start: int = 0,
                stop: int | None = None):
        """(inputs, labels, positions) of consecutive batches from position `start` (to `stop`, default the end),
        read by the workers."""
        stop = len(self) if stop is None else min(stop, len(self))
        order = [list(range(i, min(i + batch_size, stop))) for i in range(start, stop, batch_size)]
        pin = device is not None and device.type == "cuda"
        yield from device_batches(self, self.loader(order, pin=pin), device)


def device_batches(inputs: StreamedInputs, loader, device: torch.device | None):
    """Iterate a loader of `_collate` batches: the next batch's copy to the device is issued (non-blocking) before
    the current one is handed out; skipped files become warnings on `inputs.skipped`; failures one sentence."""
    def fetch(it):
        try:
            x, y, pos, errors = next(it)
        except StopIteration:
            return None
        except Exception as e:  # noqa: BLE001 - DataLoader wraps worker errors (KDError too) in its own text
            raise worker_failure(e) from None
        inputs.skipped.extend(errors)
        if device is not None and device.type != "cpu":
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return x, y, pos
    it = iter(loader)
    nxt = fetch(it)
    while nxt is not None:
        cur, nxt = nxt, fetch(it)
        yield cur


class EpochBatches:
    """The batch sampler of the training loader: the batches of the current epoch's permutation from its current
    step, set by the training loop before each epoch (the loader's persistent workers only decode)."""

    def __init__(self):
        self.plan: list[list[int]] = []

    def __iter__(self):
        return iter(self.plan)

    def __len__(self) -> int:
        return len(self.plan)


class TrainStream:
    """The training split's loader, made once per stage (persistent workers) and fed one epoch's order at a time;
    a per-sample `augment` kind (data.augment.SAMPLE_KINDS) runs in the workers, seeded by (seed, epoch, position)."""

    def __init__(self, inputs: StreamedInputs, device: torch.device, augment: str = "none", seed: int = 0):
        from .augment import SAMPLE_KINDS, SampleAugment
        self.inputs, self.device = inputs, device
        self.augment = SampleAugment(augment, seed) if augment in SAMPLE_KINDS else None
        self.sampler = EpochBatches()
        self.loader = inputs.loader(self.sampler, pin=device.type == "cuda", persistent=inputs.workers > 0,
                                    augment=self.augment)

    def epoch(self, perm: torch.Tensor, batch_size: int, start_step: int, steps: int, epoch: int = 0):
        """Batches (inputs, labels, positions) of steps start_step..steps-1 of epoch `epoch`, ordered by `perm`."""
        order = perm.cpu().tolist()
        if self.augment is not None:  # the epoch travels with each position to the persistent workers
            order = [(epoch, i) for i in order]
        self.sampler.plan = [order[s * batch_size:(s + 1) * batch_size] for s in range(start_step, steps)]
        return device_batches(self.inputs, self.loader, self.device)


def iter_batches(x, batch_size: int = 512):
    """CPU (or device) input batches of a split in order, for a tensor or streamed inputs alike."""
    if isinstance(x, StreamedInputs):
        for xb, _, _ in x.batches(batch_size):
            yield xb
    else:
        for i in range(0, len(x), batch_size):
            yield x[i:i + batch_size]
