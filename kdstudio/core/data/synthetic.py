"""Synthetic images: learnable random classes of configurable size, for trying a pipeline and benchmarks."""

from __future__ import annotations

import torch


def load_synthetic(cfg):
    """Images whose class sets a smooth random template plus noise, so models can learn something real."""
    from .bundle import from_arrays
    d = cfg.data
    g = torch.Generator().manual_seed(1234 + cfg.seed)
    n, k, c, s = d.synthetic_samples, d.synthetic_classes, d.synthetic_channels, d.synthetic_size
    low = max(2, s // 4)
    templates = torch.randn(k, c, low, low, generator=g)
    templates = torch.nn.functional.interpolate(templates, size=(s, s), mode="bilinear", align_corners=False)
    y = torch.arange(n) % k
    y = y[torch.randperm(n, generator=g)]
    x = _shifted(templates[y], d.synthetic_shift, g) + d.synthetic_noise * torch.randn(n, c, s, s, generator=g)
    return from_arrays(x, y, [f"class_{i}" for i in range(k)], cfg, name="synthetic")


def _shifted(images: torch.Tensor, most: int, g: torch.Generator) -> torch.Tensor:
    """Each image moved circularly by its own random offset of up to `most` pixels in each direction."""
    if most <= 0:
        return images
    n, c, h, w = images.shape
    dy = torch.randint(-most, most + 1, (n,), generator=g)
    dx = torch.randint(-most, most + 1, (n,), generator=g)
    rows = (torch.arange(h)[None, :] - dy[:, None]) % h
    cols = (torch.arange(w)[None, :] - dx[:, None]) % w
    return images[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]
