"""One run on N processes with PyTorch's own engine: torchrun starts the processes, this module joins them.

`torchrun --nproc-per-node N -m kdstudio run cfg.toml` (or `kdstudio run cfg.toml --nproc N`, which starts
torchrun itself) sets RANK / WORLD_SIZE / LOCAL_RANK; `init_from_env` joins the process group (NCCL on CUDA, gloo
otherwise, with a timeout so a dead rank ends the others). Every rank draws the same epoch permutation (same seed)
and trains on its stride of it (`shard`), so the union of one step's batches over the ranks is exactly the batch of
a one-process run with N times the batch size. Logged values and validation counts are all-reduced, so every rank
logs and decides the same. Without torchrun nothing here does anything: a one-process run is today's run.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import time

import torch
import torch.distributed as dist
from torch import nn

TIMEOUT_S = float(os.environ.get("KDSTUDIO_DIST_TIMEOUT", "300"))  # a rank silent this long ends the run


class _State:
    rank, world, local_rank, backend = 0, 1, 0, None
    flags = None  # a gloo group for the per-step stop flag (under NCCL: the check never waits for the GPU)


_state = _State()


_LOST = ("gloo", "nccl", "connection", "peer", "timed out", "timeout", "broken pipe", "socket")


@contextlib.contextmanager
def _peers():
    """A collective whose peers have gone (killed, crashed, silent past the timeout) ends this rank with one
    sentence instead of the backend's traceback."""
    try:
        yield
    except RuntimeError as e:  # torch.distributed.DistBackendError and gloo/NCCL errors are RuntimeErrors
        if not active() or not (isinstance(e, getattr(dist, "DistError", ())) or
                                any(k in str(e).lower() for k in _LOST)):
            raise  # a fault of this rank's own (shapes, memory): said as it is
        from ..errors import KDError
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        first = re.sub(r"^\[[^\]]*\]\s*", "", first).split(". ")[0][:100]  # gloo prefixes its source line
        raise KDError(f"Rank {_state.rank} of this distributed run lost the other processes ({first}): one of "
                      f"them was killed, failed or stayed silent for {TIMEOUT_S:.0f} s (KDSTUDIO_DIST_TIMEOUT). "
                      f"The last checkpoint is kept: continue with `kdstudio run --resume --out RUN --nproc "
                      f"{_state.world}`.") from None


def peers():
    """Around a stretch of training: DDP's own collectives (in forward and backward) that lose their peers end with
    the same one sentence as ours."""
    return _peers()


def requested() -> bool:
    """True when torchrun started this process as one of several (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """True while this process trains in a process group of more than one rank."""
    return _state.world > 1 and dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return _state.rank if active() else int(os.environ.get("RANK", "0"))


def world() -> int:
    """How many processes train together (1 without torchrun)."""
    return _state.world if active() else 1


def is_main() -> bool:
    """True on the process that writes the run folder and speaks to the listener (rank 0, or a lone process)."""
    return rank() == 0


def init_from_env(device: torch.device) -> torch.device:
    """Join torchrun's process group when WORLD_SIZE > 1; returns this rank's device (cuda:LOCAL_RANK on CUDA).
    A lone process returns `device` unchanged."""
    if not requested():
        return device
    if not active():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            if local >= torch.cuda.device_count():  # NCCL needs one GPU per process
                from ..errors import KDError
                raise KDError(f"A distributed run on CUDA needs one GPU per process, but process {local} of this "
                              f"machine has none ({torch.cuda.device_count()} GPU(s) here); use --nproc "
                              f"{torch.cuda.device_count()}, or device = \"cpu\" (gloo).")
            torch.cuda.set_device(local)
        dist.init_process_group(backend, timeout=_dt.timedelta(seconds=TIMEOUT_S))
        _state.rank, _state.world, _state.local_rank = dist.get_rank(), dist.get_world_size(), local
        _state.backend = backend
        _state.flags = dist.new_group(backend="gloo") if backend == "nccl" else None
    return torch.device("cuda", _state.local_rank) if device.type == "cuda" else device


def describe() -> str:
    """' × 2 processes (gloo)' under DDP, '' alone: appended to the device name in the summary."""
    return f" × {world()} processes ({_state.backend})" if active() else ""


def leave() -> bool:
    """End the process group after the distributed stages (every rank calls it); returns True on the rank that
    goes on alone (rank 0) and False on the others, which are done."""
    if not active():
        return True
    main = _state.rank == 0
    with _peers():
        dist.barrier()
    dist.destroy_process_group()
    _state.world, _state.flags = 1, None
    return main


def shard_size(n: int) -> int:
    """Samples each rank trains on per epoch: n // world (the few left over are skipped that epoch, as
    DistributedSampler does with drop_last, so every rank takes the same number of steps)."""
    return n // world()


def shard(perm: torch.Tensor) -> torch.Tensor:
    """This rank's part of the epoch permutation: every world-th index from its rank on (all of it alone)."""
    if not active():
        return perm
    return perm[_state.rank:_state.world * shard_size(len(perm)):_state.world]


def block(n: int) -> tuple[int, int]:
    """This rank's fixed block of rows [lo, hi) of n samples (all of them alone): the part of a teacher cache it
    computes. Blocks differ by at most one row; together they are every row once."""
    if not active():
        return 0, n
    return _bounds(_state.rank, n)


def _bounds(rank: int, n: int) -> tuple[int, int]:
    return rank * n // _state.world, (rank + 1) * n // _state.world


def gather(obj) -> list:
    """Every rank's `obj`, in rank order, on every rank ([obj] alone)."""
    if not active():
        return [obj]
    out = [None] * _state.world
    with _peers():
        dist.all_gather_object(out, obj)
    return out


def gather_rows(rows: torch.Tensor, n: int) -> torch.Tensor:
    """The n rows whose `block` each rank computed, joined in order on every rank (`rows` itself alone)."""
    if not active():
        return rows
    size = -(-n // _state.world)  # all_gather wants one shape: each block padded to the largest
    padded = torch.zeros((size, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
    padded[:len(rows)] = rows
    parts = [torch.empty_like(padded) for _ in range(_state.world)]
    with _peers():
        dist.all_gather(parts, padded)
    return torch.cat([p[:hi - lo] for p, (lo, hi) in zip(parts, (_bounds(r, n) for r in range(_state.world)))])


def from_main(fn):
    """fn() run on rank 0 alone, its value on every rank; a KDError it raises is raised on every rank (said once,
    by rank 0). Alone: fn()."""
    if not active():
        return fn()
    from ..errors import KDError
    if _state.rank == 0:
        try:
            value = fn()
        except KDError as e:
            share((str(e), None))
            raise
        return share((None, value))[1]
    error, value = share(None)
    if error:
        shared = KDError(error)
        shared.said_by_rank_0 = True  # the CLI prints it once, on rank 0
        raise shared
    return value


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The model DistributedDataParallel-wrapped under DDP (gradients averaged in backward), else itself."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def sync_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (batch-norm running statistics) on every rank: DDP copies them at the start of each
    forward, so after an epoch's last step each rank holds its own; the epoch's end makes them one model again."""
    if not active():
        return
    with _peers():
        for b in model.buffers():
            dist.broadcast(b, src=0)


def mean(values: torch.Tensor) -> torch.Tensor:
    """The mean over ranks of a tensor of logged values (itself alone)."""
    if not active():
        return values
    out = values.detach().clone()
    with _peers():
        dist.all_reduce(out)
    return out / _state.world


def average_grads(params) -> None:
    """Average the gradients of parameters outside the DDP-wrapped model (feature adapters) over the ranks."""
    if not active():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        flat = torch.cat([g.reshape(-1) for g in grads])
        with _peers():
            dist.all_reduce(flat)
        flat /= _state.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()


def any_rank_each(*flags: bool) -> tuple[bool, ...]:
    """Each flag, true when it is true on any rank, in one all-reduce (the step's [stop, pause]: a stop or pause
    asked on one rank holds every rank at the same step)."""
    if not active():
        return tuple(bool(f) for f in flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags])  # on the CPU, through gloo
    with _peers():
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_state.flags)
    return tuple(bool(v) for v in t.tolist())


PAUSE_POLL_S = 0.5  # while paused the ranks agree this often whether to go on (well inside TIMEOUT_S)


def wait_while_paused(control, on_pause=None) -> bool:
    """Under DDP, every rank waits while any rank's control is paused (rank 0's, from the window's pause file),
    agreeing every PAUSE_POLL_S; returns True when a stop ended the wait."""
    if on_pause:
        on_pause()
    while True:
        time.sleep(PAUSE_POLL_S)
        stop, paused = any_rank_each(control.stop_requested, control.paused)
        if stop or not paused:
            return stop


def share(obj):
    """Rank 0's `obj`, on every rank (broadcast; itself alone)."""
    if not active():
        return obj
    box = [obj if _state.rank == 0 else None]
    with _peers():
        dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block before the others (it fills caches that they then read)."""
    if active() and _state.rank != 0:
        with _peers():
            dist.barrier()
    try:
        yield
    finally:
        if active() and _state.rank == 0:
            with _peers():
                dist.barrier()


def accuracy(model: nn.Module, x, y: torch.Tensor) -> float:
    """Top-1 accuracy over every sample; under DDP each rank scores its part of the split (a stride of resident
    tensors, a block of streamed files) and the correct and sample counts are summed exactly (not an average of
    per-rank accuracies)."""
    from ..outputs.evaluate import accuracy as plain, predict_logits
    if not active():
        return plain(model, x, y)
    counts = torch.zeros(2, dtype=torch.float64, device=y.device)
    if isinstance(x, torch.Tensor):
        idx = torch.arange(_state.rank, len(y), _state.world)
        part, labels = x[idx.to(x.device)], y[idx.to(y.device)]
    else:  # streamed: this rank's block of files, read by its own workers
        lo, hi = block(len(y))
        part, labels = x.subset(lo, hi), y[lo:hi]
    if len(labels):
        pred = predict_logits(model, part).argmax(1).to(y.device)
        counts[0] = (pred == labels).sum()
        counts[1] = len(labels)
    with _peers():
        dist.all_reduce(counts)
    return float("nan") if counts[1] == 0 else (counts[0] / counts[1]).item()
