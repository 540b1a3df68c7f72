"""Image folders, one sub-folder per class (the ImageFolder / Create ML layout), decoded with Pillow.

Pillow is an optional dependency (`pip install pillow`); without it this source says so in one sentence.
Separate split folders: either data.val_path / data.test_path, or a data.path that holds `train/` plus any of
`val/` (or `valid/`, `validation/`) and `test/`, each with the same class sub-folders. Images are resized at load
time when data.image_size is set (data.interpolation; with data.resize, shorter side then a centre crop); random crop/flip happens per batch on the device (augment.py).
Grey images stay one channel unless any image in the set has colour, then all are RGB.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..errors import ConfigError, KDError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLIT_DIRS = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "testing")}
GREY = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def pillow():
    """The PIL.Image module, or a KDError that says how to install Pillow."""
    try:
        from PIL import Image
    except ImportError:
        raise KDError("Image folders need Pillow, which is not installed; install it with `pip install pillow` "
                      "(or use data.source = \"tensors\").") from None
    return Image


def class_folders(root: Path) -> list[Path]:
    """The class sub-folders of `root`, sorted by name (hidden folders skipped)."""
    if not root.exists():
        raise KDError(f"Image folder '{root}' does not exist; check data.path.")
    if not root.is_dir():
        raise KDError(f"'{root}' is a file; data.source = \"folder\" needs a folder with one sub-folder per class.")
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    top = root.resolve()
    loops = [p for p in dirs if p.is_symlink() and (top == p.resolve() or top.is_relative_to(p.resolve()))]
    if loops:  # a link back to the root (or above it) would become a class holding every image
        raise KDError(f"'{loops[0]}' is a link to '{loops[0].resolve()}', which holds the image folder itself; "
                      "remove that link, or make it point to one class's images.")
    if not dirs:
        raise KDError(f"Image folder '{root}' has no class sub-folders; put each class's images in a sub-folder "
                      f"named after the class (e.g. '{root / 'cat' / '1.png'}').")
    return dirs


def image_files(folder: Path) -> list[Path]:
    """Image files under `folder` (recursively, sorted, hidden files skipped)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames)
                if not f.startswith(".") and Path(f).suffix.lower() in EXTENSIONS]
    return out


def split_folders(root: Path) -> dict[str, Path] | None:
    """{"train": ..., "val": ..., "test": ...} when `root` holds split folders rather than class folders."""
    if not root.is_dir():
        return None
    subs = {p.name.lower(): p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    known = {n for names in SPLIT_DIRS.values() for n in names}
    if not subs or not set(subs) <= known or not any(n in subs for n in SPLIT_DIRS["train"]):
        return None
    return {split: next(subs[n] for n in names if n in subs)
            for split, names in SPLIT_DIRS.items() if any(n in subs for n in names)}


class Sizing(NamedTuple):
    """How each image is sized when decoded: shorter side to `resize` then a centre crop to `size`×`size`
    (torchvision's and timm's eval recipe), or straight to `size`×`size` when resize is 0; size 0 keeps it."""

    size: int = 0
    resize: int = 0
    interpolation: str = "bilinear"

    @classmethod
    def of(cls, data) -> "Sizing":
        """The sizing a DataConfig asks for."""
        return cls(int(data.image_size), int(getattr(data, "resize", 0)), getattr(data, "interpolation", "bilinear"))

    def fit(self, Image, im):
        """`im` (a PIL image) sized as asked."""
        if not self.size:
            return im
        method = getattr(Image.Resampling, self.interpolation.upper())
        if not self.resize:
            return im if im.size == (self.size, self.size) else im.resize((self.size, self.size), method)
        w, h = im.size
        short, long_ = (w, h) if w <= h else (h, w)
        new_long = int(self.resize * long_ / short)  # torchvision's Resize(int): the long side truncated
        nw, nh = (self.resize, new_long) if w <= h else (new_long, self.resize)
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), method)
        top, left = int(round((nh - self.size) / 2.0)), int(round((nw - self.size) / 2.0))  # CenterCrop's rounding
        return im.crop((left, top, left + self.size, top + self.size))


def _decode(Image, path: Path, sizing: Sizing) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        if im.mode in GREY:
            im = im.convert("L")
        elif im.mode != "RGB":
            im = im.convert("RGB")
        return np.asarray(sizing.fit(Image, im), dtype=np.uint8)


def read_image_folder(root: Path, sizing: Sizing, skip_unreadable: bool, warnings: list[str]):
    """One folder of class sub-folders → RawSplit of (N, C, H, W) floats in [0, 1]."""
    from .bundle import RawSplit
    classes = class_folders(root)
    Image = pillow()
    arrays, labels, first = [], [], None
    for label, folder in enumerate(classes):
        files = image_files(folder)
        if not files:
            raise KDError(f"Class folder '{folder}' has no images (PNG, JPEG, ...); add images or remove the folder.")
        kept = 0
        for f in files:
            try:
                a = _decode(Image, f, sizing)
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                if not skip_unreadable:
                    raise KDError(f"Image '{f}' cannot be read ({reason}); fix or remove it, or set "
                                  "data.skip_unreadable = true to skip such files with a warning.") from None
                warnings.append(f"Skipped unreadable image '{f}' ({reason}).")
                continue
            if first is None:
                first = (f, a.shape[:2])
            elif a.shape[:2] != first[1]:
                raise KDError(f"Images have different sizes: '{first[0]}' is {first[1][1]}×{first[1][0]} but '{f}' "
                              f"is {a.shape[1]}×{a.shape[0]}; set data.image_size to resize them all to one size.")
            arrays.append(a)
            labels.append(label)
            kept += 1
        if not kept:
            raise KDError(f"Class folder '{folder}' has no readable images; every file in it was skipped.")
    colour = any(a.ndim == 3 for a in arrays)
    if colour:
        arrays = [np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    else:
        x = torch.from_numpy(np.stack(arrays)).unsqueeze(1)
    x = x.float().div_(255.0)
    return RawSplit(x, torch.tensor(labels, dtype=torch.long), [c.name for c in classes], str(root))


def train_class_names(data) -> list[str]:
    """The class folder names of data.path's training images, in the order they are read ([] when unreadable)."""
    try:
        root = Path(data.path).expanduser()
        found = split_folders(root)
        return [c.name for c in class_folders(found["train"] if found else root)]
    except (OSError, KDError):
        return []  # the load that follows says what is wrong


def load_folder(cfg):
    """The folder source: class sub-folders in data.path (or its train/val/test folders), split and normalised."""
    from .bundle import assemble
    d = cfg.data
    if not d.path:
        raise ConfigError("data.source = \"folder\" needs data.path; set it to your image folder.", key="data.path")
    warnings: list[str] = []
    paths = {"train": d.path, "val": d.val_path, "test": d.test_path}
    found = split_folders(Path(d.path).expanduser()) if d.path else None
    if found:
        paths = {"train": str(found["train"]), "val": d.val_path or str(found.get("val", "")),
                 "test": d.test_path or str(found.get("test", ""))}
    channels: dict[str, int] = {}

    def read(p: Path):
        sp = read_image_folder(p, Sizing.of(d), d.skip_unreadable, warnings)
        channels[str(p)] = sp.x.shape[1]
        return sp
    splits_read = {k: read(Path(v).expanduser()) for k, v in paths.items() if v}
    if len(set(channels.values())) > 1:  # a grey split beside colour ones: make every split RGB
        for sp in splits_read.values():
            if sp.x.shape[1] == 1:
                sp.x = sp.x.expand(-1, 3, -1, -1).contiguous()
    return assemble(cfg, splits_read["train"], splits_read.get("val"), splits_read.get("test"),
                    name=Path(d.path).name, warnings=warnings)
