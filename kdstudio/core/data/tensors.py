"""Tensor files: `.npz` with arrays `x` and `y`, or a `.pt`/`.pth` holding `{"x": tensor, "y": tensor}` or `(x, y)`,
read with `torch.load(weights_only=True)` (no code from the file runs). An optional `class_names` entry (list of
strings) names the classes in label order. uint8 inputs are scaled to [0, 1]; (N, H, W) becomes (N, 1, H, W);
channels-last images (N, H, W, 1|3|4) are transposed to channels-first with a warning.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import KDError

SUFFIXES = (".npz", ".pt", ".pth")


def _read_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as npz:
            out = {}
            for k in npz.files:
                try:
                    out[k] = npz[k]
                except ValueError:  # object arrays need pickle: only class_names may be skipped
                    if k.lower() != "class_names":
                        raise KDError(f"Array '{k}' in '{path}' holds Python objects, which are not loaded for "
                                      "safety; store numbers (and class names as a string array).") from None
            return out
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise KDError(f"Tensor file '{path}' cannot be read as .npz ({e}); it may be corrupt.") from None


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


def _get(d: dict, key: str):
    for k, v in d.items():
        if isinstance(k, str) and k.lower() == key:
            return v
    return None


def read_tensor_file(path: Path, warnings: list[str]):
    """One tensor file → RawSplit (every problem is a KDError naming the file)."""
    from .bundle import RawSplit
    if not path.is_file():
        raise KDError(f"Tensor file '{path}' does not exist; check data.path.")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise KDError(f"Tensor file '{path}' must end in .npz, .pt or .pth (arrays 'x' and 'y').")
    raw = _read_npz(path) if suffix == ".npz" else _read_pt(path)
    x, y = _get(raw, "x"), _get(raw, "y")
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
    if y.dim() != 1:
        raise KDError(f"'y' in '{path}' has shape {tuple(y.shape)}; it must be one class index per sample, shape "
                      f"({len(x)},) (for one-hot labels store y.argmax(1)).")
    if y.is_floating_point():
        if not torch.equal(y, y.round()):
            raise KDError(f"'y' in '{path}' holds fractional values; labels must be whole class indices.")
    y = y.long()
    if len(y) != len(x):
        raise KDError(f"In '{path}', 'x' has {len(x)} samples but 'y' has {len(y)}; they must match.")
    if len(y) and int(y.min()) < 0:
        raise KDError(f"'y' in '{path}' has the negative label {int(y.min())}; labels must be 0, 1, 2, ...")
    names = _get(raw, "class_names")
    if names is not None:
        names = [str(n) for n in (names.tolist() if hasattr(names, "tolist") else names)]
        if len(y) and int(y.max()) >= len(names):
            raise KDError(f"'class_names' in '{path}' has {len(names)} names but the labels go up to "
                          f"{int(y.max())}; give one name per class.")
    return RawSplit(x, y, names, str(path))


def load_tensors(cfg):
    """The tensors source: data.path (+ optional data.val_path / data.test_path), split and normalised."""
    from .bundle import load_splits
    warnings: list[str] = []
    return load_splits(cfg, lambda p: read_tensor_file(p, warnings), name=Path(cfg.data.path).stem,
                       warnings=warnings)
