"""GUI-free previews of a DataBundle for the Data page: class counts per split and a grid of samples per class."""

from __future__ import annotations

import torch


def class_counts(bundle) -> dict[str, list[int]]:
    """Samples of each class (in class_names order) per split: {"train": [...], "val": [...], "test": [...]}."""
    k = bundle.num_classes
    return {split: torch.bincount(y, minlength=k).tolist()[:k] if len(y) else [0] * k
            for split, y in (("train", bundle.y_train), ("val", bundle.y_val), ("test", bundle.y_test))}


def denormalise(bundle, x: torch.Tensor) -> torch.Tensor:
    """Undo the bundle's normalisation (inputs back to roughly [0, 1] for display)."""
    if not bundle.mean:
        return x
    shape = [1, -1] + [1] * (x.dim() - 2) if x.dim() > 2 and len(bundle.mean) > 1 else [1] * x.dim()
    m = torch.tensor(bundle.mean, dtype=x.dtype).view(shape)
    s = torch.tensor(bundle.std, dtype=x.dtype).view(shape)
    return x * s + m


def sample_grid(bundle, per_class: int = 8, split: str = "train", seed: int = 0) -> dict:
    """Up to `per_class` samples of each class as display-ready images.

    Returns {"class_names", "images": float tensor (K, per_class, C, H, W) in [0, 1] (zeros where a class has
    fewer samples; None for flat features), "counts": samples shown per class, "indices": per-class lists of
    indices into the split}.
    """
    x, y = {"train": (bundle.x_train, bundle.y_train), "val": (bundle.x_val, bundle.y_val),
            "test": (bundle.x_test, bundle.y_test)}[split]
    g = torch.Generator().manual_seed(seed)
    indices = []
    for c in range(bundle.num_classes):
        idx = torch.nonzero(y == c).flatten()
        indices.append(idx[torch.randperm(len(idx), generator=g)[:per_class]].tolist())
    images = None
    if x.dim() == 4:
        images = torch.zeros(bundle.num_classes, per_class, *x.shape[1:])
        for c, idx in enumerate(indices):
            if idx:
                img = denormalise(bundle, x[idx])
                lo = img.amin(dim=(1, 2, 3), keepdim=True)
                hi = img.amax(dim=(1, 2, 3), keepdim=True)
                outside = (lo < -0.05) | (hi > 1.05)  # e.g. explicit stats that do not undo to [0, 1]
                scaled = (img - lo) / (hi - lo).clamp_min(1e-8)
                images[c, :len(idx)] = torch.where(outside, scaled, img.clamp(0, 1))
    return {"class_names": list(bundle.class_names), "images": images, "counts": [len(i) for i in indices],
            "indices": indices}
