"""The built-in demo data: UCI handwritten digits, 1,797 images of 8×8 pixels, shipped in resources/."""

from __future__ import annotations

import numpy as np
import torch

from ..resources import resource_path


def load_digits_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as float images (N, 1, 8, 8) scaled to [0, 1] and int64 labels."""
    with np.load(resource_path("data/digits.npz")) as npz:
        x = torch.from_numpy(npz["x"].astype(np.float32) / 16.0).unsqueeze(1)
        y = torch.from_numpy(npz["y"].astype(np.int64))
    return x, y


def load_digits(cfg):
    """The digits bundle, split by the config's fractions and seed."""
    from .bundle import from_arrays
    x, y = load_digits_arrays()
    return from_arrays(x, y, [str(i) for i in range(10)], cfg, name="digits")
