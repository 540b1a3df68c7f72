"""One training stage (teacher, distill, baseline, fine-tune): the step loop with the speed rules built in.

Resident data lives on the device and is indexed by a random permutation; streamed data (data.stream) is read in
the permutation's order by DataLoader workers, from the step a resume starts at, so both paths resume exactly.
Metrics accumulate on the device and are read every `log_every` steps (and at most ~20 times a second); the teacher
runs without grad, or not at all when its outputs are cached (on the device, or on disk for streamed data).
Checkpoints hold model, optimizer, scheduler, position and RNG states, so a stopped stage resumes exactly where it
stopped.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .. import events as ev
from . import distributed
from ..data.augment import augment_batch
from . import batchnorm
from .batches import steps_per_epoch
from .spec import (CrossEntropy, StageResult, StageSpec, make_optimizer,  # noqa: F401 - the stage API, here too
                   make_scheduler)
from ..errors import NumericalError, RunStopped


class StageRunner:
    """Runs one StageSpec on device-resident tensors or streamed inputs, emitting events through `emit`."""

    def __init__(self, spec: StageSpec, *, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor,
                 y_val: torch.Tensor, device: torch.device, amp_dtype: torch.dtype | None,
                 emit: Callable[..., None], control: ev.RunControl, checkpoint_path: Path, seed: int,
                 hooks: list | None = None, cache_dir: Path | None = None):
        self.s, self.x, self.y, self.x_val, self.y_val = spec, x, y, x_val, y_val
        self.device, self.amp_dtype, self.emit, self.control = device, amp_dtype, emit, control
        self.ckpt_path = checkpoint_path
        self.streamed = not isinstance(x, torch.Tensor)  # data.stream.StreamedInputs
        self.cache_dir = cache_dir or checkpoint_path.parent.parent / "cache"
        self.stream = None
        self.disk_cache = None
        self.n = len(y)
        # under DDP each rank takes steps over its shard (batch_size per process); alone the shard is everything
        self.steps_per_epoch = steps_per_epoch(distributed.shard_size(self.n), spec.batch_size)
        params = [p for p in spec.model.parameters() if p.requires_grad] + list(spec.extra_params)
        self.opt = make_optimizer(spec.optimizer, params, spec.lr, spec.weight_decay, device)
        self.sched = make_scheduler(spec.scheduler, self.opt, spec.epochs * self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.seed = seed  # per-sample augmentation in the data workers draws from (seed, epoch, position)
        self.mix_rng = random.Random(seed)
        # The global RNG (dropout in custom models) starts every stage from the stage's seed, so a stage begun
        # after a resume draws what it would have drawn in an uninterrupted run.
        torch.manual_seed(seed)
        self.forward = distributed.wrap(spec.model, device)  # the student alone, or DDP-wrapped (never the teacher)
        self.forward = torch.compile(self.forward) if spec.compile else self.forward
        self.cache = self.cache_ce = None
        self.epoch, self.step_in_epoch, self.perm = 0, 0, None
        self.hooks = list(hooks or [])

    # ---- teacher outputs ------------------------------------------------------------------------------
    def _teacher_cache_reason(self) -> str | None:
        s = self.s
        if s.teacher is None:
            return "no teacher in this stage"
        if not s.cache_teacher:
            return "distill.cache_teacher is off"
        if s.augment != "none":
            return f"augmentation '{s.augment}' changes the inputs every epoch"
        if s.mixup > 0:
            return "mixup changes the inputs every step"
        if getattr(s.objective, "uses_features", False):
            return "the method matches intermediate features"
        return None

    def _fill_disk_cache(self) -> bool:
        """The streamed path's cache: teacher logits of every training sample, on disk, filled once; under DDP each
        rank fills its block of rows (train/teacher_cache.py). False when the ranks do not share the cache folder."""
        from .teacher_cache import DiskLogits
        s = self.s
        computed = [0]  # samples this rank's teacher saw while filling

        @torch.inference_mode()
        def logits(x):
            computed[0] += len(x)
            with self._autocast():
                return s.teacher(x).float()
        classes = logits(self.x[:2].to(self.device)).shape[1]  # the file's size is known before the first batch
        computed[0] = 0
        lo, hi = distributed.block(self.n)
        cache = DiskLogits(self.cache_dir, s.name, self.n, s.cache_dtype, classes,
                           rows=(lo, hi) if distributed.active() else None)
        if distributed.active():
            distributed.from_main(cache.prepare_shared)  # rank 0 sizes the one file; its error is every rank's
            if not all(distributed.gather(cache.visible())):
                if distributed.is_main():
                    cache.delete()
                return False

        def progress(done):  # under DDP: rank 0's block (the ranks fill theirs side by side)
            self.emit(ev.CACHE_FILL, s.name, done=done - lo, total=hi - lo, path=str(cache.path), bytes=cache.bytes)
        try:
            reused = cache.fill(logits, lambda start: self.x.batches(512, self.device, start, hi), progress,
                                self.control)
        except RunStopped:
            self.save_checkpoint()
            raise
        by_rank = distributed.gather(computed[0])  # also waits until every block is on the disk
        self.disk_cache = self.cache = cache
        ce = [F.cross_entropy(cache.rows(i, i + 4096).to(self.device), self.y[i:i + 4096].to(self.device),
                              reduction="none") for i in range(0, self.n, 4096)]
        self.cache_ce = torch.cat(ce)
        again = f", {reused:,} rows reused from an earlier fill" if reused else ""
        by = _split(by_rank, ", filled")
        self.emit(ev.LOG, s.name, message=f"Teacher-output cache on disk: logits of {self.n:,} training samples in "
                  f"{s.cache_dtype} ({cache.bytes / 2**20:.1f} MiB, {cache.path}){again}{by}.",
                  teacher_cache=True)
        return True

    @torch.inference_mode()
    def _teacher_logits_all(self) -> tuple[torch.Tensor, list[int]]:
        """Teacher logits of every training sample (under DDP each rank computes its block, then all are gathered),
        and the samples each rank's teacher saw."""
        lo, hi = distributed.block(self.n)
        out = []
        for i in range(lo, hi, 512):
            with self._autocast():
                out.append(self.s.teacher(self.x[i:min(i + 512, hi)]).float())
        if not out:  # fewer samples than ranks: an empty block of the right width
            with self._autocast():
                out.append(self.s.teacher(self.x[:1]).float()[:0])
        mine = torch.cat(out)
        return distributed.gather_rows(mine, self.n), distributed.gather(len(mine))

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()  # fp32: no autocast state to save and restore every step
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ---- checkpoints ----------------------------------------------------------------------------------
    def save_checkpoint(self, complete: bool = False) -> None:
        """Write model/optimizer/scheduler/position/RNG state atomically."""
        from ..store.files import atomic_save_buffered
        if not distributed.is_main():  # rank 0 writes the run folder; the unwrapped model is the same on every rank
            return
        state = {
            "stage": self.s.name, "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "perm": None if self.perm is None else self.perm.cpu(), "complete": complete,
            "model": self.s.model.state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(), "gen": self.gen.get_state(),
            "mix_rng": self.mix_rng.getstate(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "extra": [p.detach().cpu() for p in self.s.extra_params],
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "hooks": {h.name: h.state_dict() for h in self.hooks if h.state_dict() is not None},
        }
        if distributed.active():  # the positions of a mid-stage checkpoint count this many ranks' steps
            state["world"] = distributed.world()
        atomic_save_buffered(self.ckpt_path, lambda buf: torch.save(state, buf))  # a full disk: one sentence
        self.emit(ev.CHECKPOINT, self.s.name, path=str(self.ckpt_path), epoch=self.epoch,
                  step=self.step_in_epoch, complete=complete)

    def load_checkpoint(self, state: dict) -> None:
        """Restore a checkpoint written by save_checkpoint."""
        saved_world = state.get("world", 1)
        if saved_world != distributed.world() and not state.get("complete"):
            from ..errors import KDError
            raise KDError(f"The {self.s.name} checkpoint stopped mid-stage in a run on {saved_world} process(es); "
                          f"continue it on as many (`kdstudio run --resume --out RUN --nproc {saved_world}`), since "
                          f"its batch positions count {saved_world} rank(s).")
        self.s.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.gen.set_state(state["gen"])
        self.mix_rng.setstate(state["mix_rng"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        with torch.no_grad():
            for p, saved in zip(self.s.extra_params, state.get("extra", [])):
                p.copy_(saved)
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        for h in self.hooks:
            if h.name in (state.get("hooks") or {}):
                h.load_state_dict(state["hooks"][h.name])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.perm = None if state["perm"] is None else state["perm"].to(self.device)

    # ---- the loop -------------------------------------------------------------------------------------
    def run(self) -> StageResult:
        """Train until the configured number of epochs; raises RunStopped after checkpointing on stop."""
        s = self.s
        reason = self._teacher_cache_reason()
        if s.teacher is not None:
            if reason is None and self.streamed and not self._fill_disk_cache():
                reason = "the ranks do not see one cache folder (put the run folder on a drive every machine shares)"
            if reason is None and not self.streamed:
                self.cache, by_rank = self._teacher_logits_all()
                self.cache_ce = F.cross_entropy(self.cache, self.y, reduction="none")  # teacher CE per sample
                self.emit(ev.LOG, s.name, message=f"Teacher-output cache on: logits of {self.n:,} training "
                          f"samples computed once ({self.cache.numel() * 4 / 1024:.0f} KiB){_split(by_rank, '')}.",
                          teacher_cache=True)
            elif reason is not None:
                self.emit(ev.LOG, s.name, message=f"Teacher-output cache off: {reason}.", teacher_cache=False)
        start, samples, val_acc = time.perf_counter(), 0, float("nan")
        first = self.epoch + self.step_in_epoch / max(self.steps_per_epoch, 1)
        while self.epoch < s.epochs:
            with distributed.peers():  # under DDP a lost rank is one sentence, not the backend's traceback
                samples += self._run_epoch()
            self._refresh_batchnorm()
            distributed.sync_buffers(s.model)  # every rank validates and saves the same model (rank 0's statistics)
            val_acc = distributed.accuracy(s.model, self.x_val, self.y_val)
            self._drop_features()  # the validation forward passes were hooked too
            for h in self.hooks:
                h.epoch_end(self, val_acc)
            self.emit(ev.EPOCH, s.name, epoch=self.epoch + 1, epochs=s.epochs,
                      val_acc=val_acc if math.isfinite(val_acc) else None, lr=self.opt.param_groups[0]["lr"],
                      terms=self._epoch_terms)
            self.epoch, self.step_in_epoch, self.perm = self.epoch + 1, 0, None
            self.save_checkpoint(complete=self.epoch >= s.epochs)
        wall = time.perf_counter() - start
        self.stream = None  # the training loader's persistent workers end with the stage
        if self.disk_cache is not None and not s.keep_cache and distributed.is_main():
            self.disk_cache.delete()
            self.emit(ev.LOG, s.name, message="Teacher-output cache deleted (distill.keep_cache = false).")
        for h in self.hooks:
            if hasattr(h, "apply_to"):  # the weight average becomes the stage's model
                h.apply_to(s.model)
        return StageResult(s.epochs, samples / wall if wall > 0 else 0.0, wall, val_acc, self.cache is not None,
                           timed_epochs=round(s.epochs - first, 3))

    def _refresh_batchnorm(self) -> None:
        """Recompute batch-norm statistics that this stage's steps so far have not finished (train/batchnorm.py)."""
        said = batchnorm.refresh_if_stale(self.s.model, (self.epoch + 1) * self.steps_per_epoch, self.x,
                                          self.s.batch_size, self.device, quiet=getattr(self, "_bn_said", False))
        if said:
            self._bn_said = True
            self.emit(ev.LOG, self.s.name, message=said)
        self._drop_features()  # the forward passes were hooked too

    def _run_epoch(self) -> int:
        s, B = self.s, self.s.batch_size
        s.model.train()
        if self.perm is None:
            self.perm = torch.randperm(self.n, device=self.device, generator=self.gen)
        order = distributed.shard(self.perm)  # this rank's samples (all of them alone)
        batches = None
        if self.streamed:
            if self.stream is None:
                from ..data.stream import TrainStream
                self.stream = TrainStream(self.x, self.device, s.augment, self.seed)
            batches = self.stream.epoch(order, B, self.step_in_epoch, self.steps_per_epoch, self.epoch)
        names: list[str] | None = None
        window_sum: torch.Tensor | None = None  # all logged values of the window, one device tensor
        epoch_sums: dict[str, float] = {}
        window, epoch_steps, samples, window_first = 0, 0, 0, self.step_in_epoch
        last_emit, window_start = 0.0, time.perf_counter()
        def on_pause():
            self.emit(ev.LOG, s.name, message="Paused.")
        for step in range(self.step_in_epoch, self.steps_per_epoch):
            # every rank stops (or pauses) at this step: rank 0's pause file reaches the others here
            stop, pause = distributed.any_rank_each(self.control.stop_requested, self.control.paused)
            if pause and distributed.active():
                stop = distributed.wait_while_paused(self.control, on_pause)
            if stop:
                self.step_in_epoch = step
                self.save_checkpoint()
                raise RunStopped()
            if not distributed.active():  # alone: the control's own wait (the window's YieldingControl too)
                self.control.wait_if_paused(on_pause)
            idx = order[step * B:(step + 1) * B]
            xb = yb = pos = None
            if batches is not None:  # pos: the batch's positions on the CPU, as the workers read them
                xb, yb, pos = next(batches)
            for h in self.hooks:
                h.before_step(self, idx)
            names, values = self._step(idx, xb, yb, pos)
            window_sum = values if window_sum is None else window_sum + values
            window += 1
            samples += len(idx)
            if window >= s.log_every or step == self.steps_per_epoch - 1:
                now = time.perf_counter()
                # ranks decide together: the time throttle would differ between them, so under DDP every window logs
                if now - last_emit >= 0.05 or step == self.steps_per_epoch - 1 or distributed.active():
                    means_t = window_sum / window
                    keys = list(names)
                    if self.cache_ce is not None:  # the teacher's CE on this window's samples, from the cache
                        means_t = torch.cat([means_t, self.cache_ce[order[window_first * B:(step + 1) * B]]
                                             .mean().reshape(1)])
                        keys.append("teacher_ce")
                    means_t = distributed.mean(means_t)  # every term and accuracy over all ranks' samples
                    means = dict(zip(keys, means_t.tolist()))  # the one host sync per window
                    self._check_finite(means)
                    for k, v in means.items():
                        epoch_sums[k] = epoch_sums.get(k, 0.0) + v * window
                    epoch_steps += window
                    self.emit(ev.STEP, s.name, epoch=self.epoch + 1, epochs=s.epochs, step=step + 1,
                              steps=self.steps_per_epoch,
                              global_step=self.epoch * self.steps_per_epoch + step + 1,
                              lr=self.opt.param_groups[0]["lr"],
                              samples_per_s=samples * distributed.world() / max(now - window_start, 1e-9),
                              terms=means)
                    window_sum, window, samples, last_emit, window_start = None, 0, 0, now, now
                    window_first = step + 1
        self._epoch_terms = {k: v / max(epoch_steps, 1) for k, v in epoch_sums.items()}
        return self.n

    def _step(self, idx: torch.Tensor, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
              pos: torch.Tensor | None = None) -> tuple[list[str], torch.Tensor]:
        s = self.s
        if x is None:  # resident: index the device tensors; streamed: the batch the workers read
            x, y = self.x[idx], self.y[idx]
        x = augment_batch(x, s.augment, self.gen)
        lam, y2 = 1.0, None
        if s.mixup > 0:
            lam = self.mix_rng.betavariate(s.mixup, s.mixup)
            j = torch.randperm(len(idx), device=self.device, generator=self.gen)
            x, y2 = lam * x + (1 - lam) * x[j], y[j]
        with self._autocast():
            if s.teacher is not None and self.cache is None:
                with torch.no_grad():
                    t_logits = s.teacher(x).float()
            else:
                # the disk cache is read with the CPU positions: indexing it with the device permutation would
                # copy idx to the host, a sync every step on a GPU
                t_logits = None if self.cache is None else (
                    self.cache[pos if pos is not None else idx].to(self.device, non_blocking=True)
                    if self.disk_cache is not None else self.cache[idx])
            out = self.forward(x)
        terms = s.objective(out.float(), t_logits, y, epoch=self.epoch)
        if y2 is not None:  # labels enter linearly: mix the label-dependent terms by lam
            other = s.objective(out.float(), t_logits, y2, epoch=self.epoch)
            terms = {k: lam * v + (1 - lam) * other[k] for k, v in terms.items()}
        self._drop_features()
        self.opt.zero_grad(set_to_none=True)
        if self.scaler:
            self.scaler.scale(terms["total"]).backward()
            distributed.average_grads(s.extra_params)
            for h in self.hooks:
                h.after_backward(self)
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            terms["total"].backward()
            distributed.average_grads(s.extra_params)  # feature adapters live outside the DDP-wrapped student
            for h in self.hooks:
                h.after_backward(self)
            self.opt.step()
        self.sched.step()
        for h in self.hooks:
            h.after_step(self)
        # Everything logged goes into one stacked tensor: two kernels a step to accumulate, not one per term.
        names = [*terms, "acc"]
        with torch.no_grad():
            logged = [v.detach().float() for v in terms.values()]
            logged.append((out.argmax(1) == y).float().mean())
            if t_logits is not None and self.cache_ce is None:
                names.append("teacher_ce")
                logged.append(F.cross_entropy(t_logits, y))
            return names, torch.stack(logged)

    def _drop_features(self) -> None:
        # Hooked features are not needed once the loss is computed (autograd keeps what backward uses); holding
        # them into the next forward would raise the peak memory by one set of feature maps.
        getattr(self.s.objective, "clear", lambda: None)()

    def _check_finite(self, means: dict[str, float]) -> None:
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        if bad:
            raise NumericalError(
                f"The {self.s.name} loss became {'NaN' if math.isnan(means[bad[0]]) else 'infinite'} in epoch "
                f"{self.epoch + 1} (term '{bad[0]}'); lower the learning rate (now {self.s.lr:g}) and run again.")


def _split(by_rank: list[int], lead: str) -> str:
    """'<lead> by 2 processes: 100 + 100 samples' under DDP (the samples each rank's teacher saw), '' alone."""
    if len(by_rank) < 2:
        return ""
    return f"{lead} by {len(by_rank)} processes: {' + '.join(f'{k:,}' for k in by_rank)} samples"
