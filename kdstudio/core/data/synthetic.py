"""Synthetic images: learnable random classes of configurable size, for trying a pipeline and benchmarks."""

from __future__ import annotations

import torch


def load_synthetic(cfg):
    """Images whose class sets a smooth random template plus noise, so models can learn something real; with
    data.synthetic_label_noise, some training and validation labels are wrong (the test split's never are)."""
    from .bundle import RawSplit, assemble, from_arrays, stratified_split
    d = cfg.data
    g = torch.Generator().manual_seed(1234 + cfg.seed)
    n, k, c, s = d.synthetic_samples, d.synthetic_classes, d.synthetic_channels, d.synthetic_size
    low = max(2, s // 4)
    templates = torch.randn(k, c, low, low, generator=g)
    templates = torch.nn.functional.interpolate(templates, size=(s, s), mode="bilinear", align_corners=False)
    y = torch.arange(n) % k
    y = y[torch.randperm(n, generator=g)]
    x = _shifted(templates[y], d.synthetic_shift, g) + d.synthetic_noise * torch.randn(n, c, s, s, generator=g)
    names = [f"class_{i}" for i in range(k)]
    noise = d.synthetic_label_noise
    if noise <= 0:
        return from_arrays(x, y, names, cfg, name="synthetic")
    # cut the splits on the true labels, as a source with a hand-checked test set would, then mislabel the rest
    tr, va, te = stratified_split(y, d.val_fraction, d.test_fraction, cfg.seed)
    seen = torch.cat([tr, va])
    labels = y.clone()
    labels[seen] = mislabelled(y[seen], k, noise, g)
    parts = [RawSplit(x[i], labels[i], names, "synthetic") for i in (tr, va)]
    bundle = assemble(cfg, parts[0], parts[1], RawSplit(x[te], y[te], names, "synthetic"), name="synthetic")
    bundle.notes.append(f"Synthetic data: {noise:.0%} of the training and validation labels are wrong on purpose "
                        "(data.synthetic_label_noise), so validation accuracy reads low; the test labels are all "
                        "true, and the teacher's soft targets are what can see past the wrong ones.")
    return bundle


def mislabelled(y: torch.Tensor, classes: int, fraction: float, g: torch.Generator) -> torch.Tensor:
    """`y` with round(fraction × len(y)) labels, chosen at random, each moved to a random *other* class."""
    out = y.clone()
    wrong = torch.randperm(len(y), generator=g)[:round(fraction * len(y))]
    out[wrong] = (y[wrong] + torch.randint(1, classes, (len(wrong),), generator=g)) % classes
    return out


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
