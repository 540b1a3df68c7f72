"""Random augmentation: batched tensor ops on the device (shift, crop, crop_flip: no per-sample Python loop), and
per-sample recipes run in the data workers of the streamed path (rrc_flip, randaugment, trivialaugment), each
sample's randomness seeded from (stage seed, epoch, sample position) so it does not depend on the worker."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError

BATCH_KINDS = ("none", "shift", "crop", "crop_flip")
SAMPLE_KINDS = ("rrc_flip", "randaugment", "trivialaugment")  # per sample, in the workers (streamed data only)
KINDS = BATCH_KINDS + SAMPLE_KINDS
TORCHVISION_KINDS = ("randaugment", "trivialaugment")


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
    """A randomly augmented copy of an image batch (B, C, H, W); flat inputs are returned unchanged, and so are
    batches of a per-sample kind (the workers augmented them).

    shift: translate by up to 1 pixel · crop: pad H/8 and crop back · crop_flip: crop + horizontal flip (p=0.5).
    """
    if kind in ("none", *SAMPLE_KINDS) or x.dim() != 4:
        return x
    pad = 1 if kind == "shift" else max(1, x.shape[-1] // 8)
    out = _random_crop(x, pad, generator)
    if kind == "crop_flip":
        flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return out


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """The seed of one sample's augmentation: a hash of (stage seed, epoch, position in the split)."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, position]).generate_state(2, np.uint64)[0] >> 1)


def rrc_flip(x: torch.Tensor, g: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """RandomResizedCrop to the sample's own size + horizontal flip (p=0.5) of one (C, H, W) image, as torchvision
    draws it: 10 tries of an area in `scale` and a log-uniform aspect in `ratio`, else the central crop."""
    _, h, w = x.shape
    area = h * w
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    box = None
    for _ in range(10):
        target = area * (scale[0] + (scale[1] - scale[0]) * torch.rand(1, generator=g).item())
        aspect = math.exp(log_r[0] + (log_r[1] - log_r[0]) * torch.rand(1, generator=g).item())
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
            box = (top, left, ch, cw)
            break
    if box is None:  # fall back to the central crop at the nearest allowed aspect
        in_ratio = w / h
        if in_ratio < ratio[0]:
            cw, ch = w, int(round(w / ratio[0]))
        elif in_ratio > ratio[1]:
            ch, cw = h, int(round(h * ratio[1]))
        else:
            cw, ch = w, h
        box = ((h - ch) // 2, (w - cw) // 2, ch, cw)
    top, left, ch, cw = box
    out = x[:, top:top + ch, left:left + cw]
    if (ch, cw) != (h, w):
        out = F.interpolate(out[None], size=(h, w), mode="bilinear", align_corners=False,
                            antialias=ch > h or cw > w)[0]
    if torch.rand(1, generator=g).item() < 0.5:
        out = out.flip(-1)
    return out


def torchvision_transform(kind: str):
    """torchvision's RandAugment or TrivialAugmentWide; a missing torchvision is one sentence."""
    try:
        from torchvision import transforms
    except Exception as e:  # noqa: BLE001 - missing, or built for another torch (its C++ ops fail to load)
        raise ConfigError(f"data.augment = \"{kind}\" needs torchvision, which does not import here "
                          f"({type(e).__name__}); pip install torchvision (built for this torch), or use "
                          "data.augment = \"rrc_flip\".", key="data.augment") from None
    return transforms.RandAugment() if kind == "randaugment" else transforms.TrivialAugmentWide()


class SampleAugment:
    """One per-sample recipe, applied in a worker to a decoded [0, 1] sample before its normalisation; picklable
    (the torchvision transform is built in the process that uses it)."""

    def __init__(self, kind: str, seed: int):
        self.kind, self.seed, self._tv = kind, seed, None

    def __getstate__(self):
        return {**self.__dict__, "_tv": None}

    def __call__(self, x: torch.Tensor, epoch: int, position: int) -> torch.Tensor:
        """Sample `position` of the split, augmented as epoch `epoch` draws it."""
        if x.dim() != 3:
            return x
        s = sample_seed(self.seed, epoch, position)
        if self.kind == "rrc_flip":
            return rrc_flip(x, torch.Generator().manual_seed(s))
        if self._tv is None:
            self._tv = torchvision_transform(self.kind)
        u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8)
        with torch.random.fork_rng(devices=[]):  # torchvision draws from the global generator: seed it per sample
            torch.manual_seed(s)
            return self._tv(u8).float().div_(255.0)
