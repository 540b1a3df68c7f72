"""Random augmentation as batched tensor ops on the device (no per-sample Python loop)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("none", "shift", "crop", "crop_flip")


def _random_crop(x: torch.Tensor, pad: int, generator: torch.Generator | None) -> torch.Tensor:
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    off = torch.randint(0, 2 * pad + 1, (2, b), device=x.device, generator=generator)
    rows = off[0][:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = off[1][:, None] + torch.arange(w, device=x.device)  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """A randomly augmented copy of an image batch (B, C, H, W); flat inputs are returned unchanged.

    shift: translate by up to 1 pixel · crop: pad H/8 and crop back · crop_flip: crop + horizontal flip (p=0.5).
    """
    if kind == "none" or x.dim() != 4:
        return x
    pad = 1 if kind == "shift" else max(1, x.shape[-1] // 8)
    out = _random_crop(x, pad, generator)
    if kind == "crop_flip":
        flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return out
