"""Tensor files: `.npz` with arrays `x` and `y`, a `.npy` pair (data.path = `x.npy` or `<name>_x.npy`, the labels in
`y.npy` / `<name>_y.npy` beside it), or a `.pt`/`.pth` holding `{"x": tensor, "y": tensor}` or `(x, y)`,
read with `torch.load(weights_only=True)` (no code from the file runs). `.npy` and `.npz` can stream
(tensor_stream.py); `.pt` files are read whole. An optional `class_names` entry (list of
strings) names the classes in label order. uint8 inputs are scaled to [0, 1]; (N, H, W) becomes (N, 1, H, W);
channels-last images (N, H, W, 1|3|4) are transposed to channels-first with a warning.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import KDError
from .tensor_io import check_labels, get_entry, read_npy_pair, read_npz

SUFFIXES = (".npz", ".npy", ".pt", ".pth")
STREAMABLE = (".npz", ".npy")


def _read_pt(path: Path) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise KDError(f"Tensor file '{path}' holds objects other than tensors, lists and numbers, which are not "
                      "loaded for safety; save {'x': tensor, 'y': tensor} with torch.save.") from None
    except Exception as e:  # noqa: BLE001 - zip/pickle/EOF errors all mean the same to the user
        raise KDError(f"Tensor file '{path}' cannot be read ({type(e).__name__}); it may be corrupt or not a "
                      "PyTorch file.") from None
    if isinstance(obj, (tuple, list)) and len(obj) in (2, 3):
        return dict(zip(("x", "y", "class_names"), obj))
    if isinstance(obj, dict):
        return obj
    raise KDError(f"Tensor file '{path}' holds a {type(obj).__name__}; it must hold {{'x': tensor, 'y': tensor}} "
                  "or a pair (x, y).")


def read_tensor_file(path: Path, warnings: list[str]):
    """One tensor file → RawSplit (every problem is a KDError naming the file)."""
    from .bundle import RawSplit
    if not path.is_file():
        raise KDError(f"Tensor file '{path}' does not exist; check data.path.")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise KDError(f"Tensor file '{path}' must end in .npz, .npy, .pt or .pth (arrays 'x' and 'y').")
    raw = read_npz(path) if suffix == ".npz" else read_npy_pair(path) if suffix == ".npy" else _read_pt(path)
    x, y = get_entry(raw, "x"), get_entry(raw, "y")
    if x is None or y is None:
        keys = ", ".join(map(str, raw)) or "nothing"
        raise KDError(f"Tensor file '{path}' has {keys}; it needs 'x' (inputs) and 'y' (labels).")
    x = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    y = torch.as_tensor(np.asarray(y)) if not isinstance(y, torch.Tensor) else y
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    elif not x.is_floating_point():
        x = x.float()
    x = x.float()
    if x.dim() < 2:
        raise KDError(f"'x' in '{path}' has shape {tuple(x.shape)}; it needs one row per sample, (N, features) or "
                      "(N, channels, height, width).")
    if x.dim() == 3:
        x = x.unsqueeze(1)
    elif x.dim() == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.permute(0, 3, 1, 2).contiguous()
        warnings.append(f"'x' in '{path.name}' looked channels-last (N, H, W, C); transposed to (N, C, H, W).")
    y, names = check_labels(path, len(x), y, get_entry(raw, "class_names"))
    return RawSplit(x, y, names, str(path))


def _streamable(paths: dict) -> bool:
    return all(Path(p).suffix.lower() in STREAMABLE for p in paths.values() if p)


def load_tensors(cfg, cache_dir: Path | None = None):
    """The tensors source: data.path (+ optional data.val_path / data.test_path), split and normalised; .npy and
    .npz files stream when data.mode (or auto) says so, memory-mapped (`cache_dir` holds a compressed .npz's
    one-time conversion: the run folder's cache/)."""
    from .bundle import load_splits
    from .stream import choose_mode
    d = cfg.data
    warnings: list[str] = []
    paths = {"train": d.path, "val": d.val_path, "test": d.test_path}
    reason = ""
    if d.path and d.mode != "resident" and _streamable(paths):
        for p in paths.values():
            if p and not Path(p).expanduser().is_file():
                raise KDError(f"Tensor file '{Path(p).expanduser()}' does not exist; check data.path.")
        from .tensor_stream import array_shape, load_streamed
        sizes = [array_shape(Path(p).expanduser()) for p in paths.values() if p]
        shape = sizes[0][1]
        if d.image_size and len(shape) == 3:
            shape = (shape[0], d.image_size, d.image_size)
        mode, reason = choose_mode(cfg, sum(n for n, _ in sizes), shape, "samples")
        if mode == "streamed":
            return load_streamed(cfg, paths, reason, warnings, cache_dir)
    elif d.path and d.mode == "streamed":
        warnings.append("data.mode = \"streamed\" applies to image folders, CSV and .npy/.npz tensor files only; .pt "
                        "files are read whole, so this run keeps its data resident.")
    bundle = load_splits(cfg, lambda p: read_tensor_file(p, warnings), name=Path(cfg.data.path).stem,
                         warnings=warnings)
    bundle.mode_reason = reason
    return bundle
