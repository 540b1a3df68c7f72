"""The array formats of the tensors source, shared by its resident reader (tensors.py) and its streamed one
(tensor_stream.py): `.npz` members, `.npy` pairs and the label checks."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import KDError


def labels_path(path: Path) -> Path:
    """The labels file of a .npy inputs file: x.npy → y.npy, <name>_x.npy → <name>_y.npy (or -x → -y)."""
    stem = path.stem
    if stem.lower() == "x":
        return path.with_name(("Y" if stem == "X" else "y") + path.suffix)
    if len(stem) > 2 and stem[-2] in "_-" and stem[-1] in "xX":
        return path.with_name(stem[:-1] + ("Y" if stem[-1] == "X" else "y") + path.suffix)
    raise KDError(f"Tensor file '{path}' is a single .npy; name the inputs x.npy (or <name>_x.npy) and put the labels "
                  "beside them in y.npy (or <name>_y.npy), or save both in one .npz with np.savez(path, x=..., y=...).")


def read_npy_pair(path: Path) -> dict:
    """{"x", "y"} of a .npy inputs file and its labels file beside it."""
    ypath = labels_path(path)
    if not ypath.is_file():
        raise KDError(f"The labels of '{path}' belong in '{ypath}', which does not exist; save them there with "
                      "np.save (one class index per sample).")
    out = {}
    for key, p in (("x", path), ("y", ypath)):
        try:
            out[key] = np.load(p, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise KDError(f"Tensor file '{p}' cannot be read as .npy ({e}); it may be corrupt or hold Python "
                          "objects, which are not loaded for safety.") from None
    return out


def read_npz(path: Path, skip: tuple = ()) -> dict:
    """The arrays of an .npz (but those named in `skip`), object arrays refused but for class_names."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            out = {}
            for k in npz.files:
                if k.lower() in skip:
                    continue
                try:
                    out[k] = npz[k]
                except ValueError:  # object arrays need pickle: only class_names may be skipped
                    if k.lower() != "class_names":
                        raise KDError(f"Array '{k}' in '{path}' holds Python objects, which are not loaded for "
                                      "safety; store numbers (and class names as a string array).") from None
            return out
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise KDError(f"Tensor file '{path}' cannot be read as .npz ({e}); it may be corrupt.") from None


def get_entry(d: dict, key: str):
    """The value of `key` in d, whatever the case of its name (None when absent)."""
    for k, v in d.items():
        if isinstance(k, str) and k.lower() == key:
            return v
    return None


def check_labels(path: Path, n: int, y: torch.Tensor, names) -> tuple[torch.Tensor, list[str] | None]:
    """(int64 labels, class names or None) of a file of n samples; a wrong shape, value or count is one sentence."""
    if y.dim() != 1:
        raise KDError(f"'y' in '{path}' has shape {tuple(y.shape)}; it must be one class index per sample, shape "
                      f"({n},) (for one-hot labels store y.argmax(1)).")
    if y.is_floating_point():
        if not torch.equal(y, y.round()):
            raise KDError(f"'y' in '{path}' holds fractional values; labels must be whole class indices.")
    y = y.long()
    if len(y) != n:
        raise KDError(f"In '{path}', 'x' has {n} samples but 'y' has {len(y)}; they must match.")
    if len(y) and int(y.min()) < 0:
        raise KDError(f"'y' in '{path}' has the negative label {int(y.min())}; labels must be 0, 1, 2, ...")
    if names is not None:
        names = [str(n) for n in (names.tolist() if hasattr(names, "tolist") else names)]
        if len(y) and int(y.max()) >= len(names):
            raise KDError(f"'class_names' in '{path}' has {len(names)} names but the labels go up to "
                          f"{int(y.max())}; give one name per class.")
    return y, names
