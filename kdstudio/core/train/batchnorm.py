"""Batch-norm statistics that a short stage leaves unfinished, recomputed before they are used.

A batch-norm layer keeps running averages of its batch means and variances for eval mode, updated with `momentum`
at every training step. torchvision's MobileNetV3 uses momentum 0.01 (tuned for ImageNet's ~500k steps): after the
114 steps of a small folder's 6 epochs, 32 % of its running averages are still the initial 0 / 1, and the model
scores at chance in eval mode while it trains well (measured: 10 % eval vs 96 % train-mode accuracy on the digits
at 32 px; 95.6 % once the statistics were recomputed). When that is the case, the statistics are recomputed over
training inputs — PyTorch's `torch.optim.swa_utils.update_bn` (a cumulative average, then the momentum restored) —
before each validation and at the end of the stage, so validation, best-checkpoint choice and evaluation read a
finished model.
"""

from __future__ import annotations

import math

import torch
from torch import nn

STALE_SHARE = 0.05      # the initial statistics may still weigh this much in the running averages, not more
REFRESH_SAMPLES = 8192  # training inputs the statistics are recomputed from (plenty for means and variances)
SLOW_MOMENTUM = 0.1     # PyTorch's default; slower layers (MobileNetV3's 0.01) are the ones a short stage leaves raw


def _norms(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def stale_share(model: nn.Module, steps: int) -> float:
    """How much the initial statistics still weigh after `steps` updates, for the slowest batch-norm layer whose
    momentum is below PyTorch's default 0.1 (0 when there is none: layers at the default keep today's behaviour,
    and a cumulative average, momentum None, is never stale)."""
    shares = [(1.0 - m.momentum) ** steps for _, m in _norms(model) if m.momentum and m.momentum < SLOW_MOMENTUM]
    return max(shares, default=0.0)


def steps_needed(model: nn.Module) -> int:
    """Steps after which no layer's initial statistics weigh more than STALE_SHARE."""
    slow = min((m.momentum for _, m in _norms(model) if m.momentum and m.momentum < SLOW_MOMENTUM), default=None)
    return math.ceil(math.log(STALE_SHARE) / math.log(1.0 - slow)) if slow and slow < 1 else 0


def refresh(model: nn.Module, batches, device: torch.device) -> None:
    """Recompute every batch-norm layer's running statistics over `batches` of inputs (no gradients; the global
    RNG, which dropout draws from, is left as it was, so runs and resumes stay exact)."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.optim.swa_utils.update_bn(batches, model, device=device)


def first_inputs(x, n: int, batch_size: int):
    """The first `n` training inputs in batches, without augmentation (streamed inputs: decoded by the workers)."""
    if isinstance(x, torch.Tensor):
        for i in range(0, n, batch_size):
            yield x[i:min(i + batch_size, n)]
        return
    seen = 0
    for xb, _, _ in x.batches(batch_size):
        if seen >= n:
            break
        seen += len(xb)
        yield xb


def refresh_if_stale(model: nn.Module, steps: int, x, batch_size: int, device: torch.device, *,
                     quiet: bool = False) -> str:
    """Refresh the statistics when `steps` updates left them unfinished; returns the log sentence saying so ("" when
    nothing was done, or `quiet`)."""
    share = stale_share(model, steps)
    if share <= STALE_SHARE:
        return ""
    n = min(len(x), REFRESH_SAMPLES)
    refresh(model, first_inputs(x, n, batch_size), device)
    if quiet:
        return ""
    return (f"Batch-norm statistics are recomputed over {n:,} training samples before each validation: after "
            f"{steps:,} steps their running averages would still be {share:.0%} the initial values (this model's "
            f"slowest batch norm needs {steps_needed(model):,} steps).")
