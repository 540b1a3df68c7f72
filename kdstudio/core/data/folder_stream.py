"""Image folders, on either path: `load_folder` (the folder source) scans the names, lets `stream.choose_mode`
decide, and reads the images whole (folder.py, the resident path) or streams them.

On the streamed path the file names are scanned (no image decoded but a few headers and a
sample for the normalisation statistics), split by class with the seed, and each image is decoded, resized and
normalised in a DataLoader worker when its batch is read (stream.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import KDError
from .folder import GREY, Sizing, _decode, class_folders, image_files, pillow
from .stream import SampleReader, StreamedInputs

HEADER_SAMPLE = 64      # image headers opened to decide grey or colour and the size
STATS_SAMPLE = 512      # training images decoded for data.normalize = "auto" (mean and std per channel)


def scan(root: Path) -> tuple[list[str], list[int], list[str]]:
    """(files, labels, class names) of one folder of class sub-folders, from the names alone."""
    files: list[str] = []
    labels: list[int] = []
    classes = class_folders(root)
    for label, folder in enumerate(classes):
        found = image_files(folder)
        if not found:
            raise KDError(f"Class folder '{folder}' has no images (PNG, JPEG, ...); add images or remove the folder.")
        files += [str(f) for f in found]
        labels += [label] * len(found)
    return files, labels, [c.name for c in classes]


def probe(files: list[str], image_size: int) -> tuple[int, tuple[int, int]]:
    """(channels, (H, W)) from the headers of a spread of the files: colour when any of them has colour; (H, W) is
    image_size² when images are sized."""
    Image = pillow()
    step = max(1, len(files) // HEADER_SAMPLE)
    colour, hw = False, None
    for f in files[::step][:HEADER_SAMPLE]:
        try:
            with Image.open(f) as im:
                colour = colour or im.mode not in GREY
                hw = hw or (im.size[1], im.size[0])
        except (OSError, SyntaxError, ValueError):
            continue  # an unreadable file is reported (or skipped) when its batch is read
    if hw is None:
        raise KDError(f"None of the sampled images under '{Path(files[0]).parent.parent}' can be read; check the "
                      "folder's files.")
    return (3 if colour else 1), ((image_size, image_size) if image_size else hw)


class FolderReader(SampleReader):
    """Decodes image files with Pillow, in the worker that reads the batch."""

    def __init__(self, files: list[str], channels: int, hw: tuple[int, int], sizing: Sizing):
        self.files, self.channels, self.hw, self.sizing = files, channels, tuple(hw), Sizing(*sizing)

    def __len__(self) -> int:
        return len(self.files)

    def read(self, i: int) -> torch.Tensor:
        """Image `i` as (C, H, W) floats in [0, 1]."""
        Image = pillow()
        f = self.files[i]
        try:
            a = _decode(Image, Path(f), self.sizing)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise KDError(f"Image '{f}' cannot be read ({reason}); fix or remove it, or set data.skip_unreadable = "
                          "true to skip such files with a warning.") from None
        if a.shape[:2] != self.hw:
            raise KDError(f"Image '{f}' is {a.shape[1]}×{a.shape[0]} but the others are {self.hw[1]}×{self.hw[0]}; "
                          "set data.image_size to resize them all to one size.")
        if a.ndim == 2:
            a = a[:, :, None]
        if a.shape[2] != self.channels:
            a = np.repeat(a, 3, axis=2) if self.channels == 3 else a.mean(axis=2, keepdims=True).astype(np.uint8)
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().div_(255.0)


def _stats(x: StreamedInputs, seed: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of a seeded sample of the training images."""
    g = torch.Generator().manual_seed(seed)
    sample = []
    for i in torch.randperm(len(x), generator=g)[:STATS_SAMPLE].tolist():
        try:
            sample.append(x.reader.read(int(x.index[i])))
        except KDError:
            continue  # an unreadable file is reported (or skipped) when its batch is read
    if not sample:
        raise KDError(f"None of the {min(len(x), STATS_SAMPLE)} sampled training images in '{x.where}' can be read; "
                      "check the folder's files.")
    sample = torch.stack(sample)
    return sample.mean(dim=(0, 2, 3)).tolist(), sample.std(dim=(0, 2, 3)).clamp_min(1e-8).tolist()


def load_streamed(cfg, paths: dict[str, str], reason: str, warnings: list[str], scanned: dict | None = None):
    """The folder source on the streamed path: a DataBundle whose inputs are StreamedInputs (`scanned`: the
    splits' `scan` results when the caller has them)."""
    from .bundle import DataBundle, RawSplit, _align, check_splits, stratified_split
    d = cfg.data
    scanned = scanned or {k: scan(Path(v).expanduser()) for k, v in paths.items() if v}
    files, labels, names = scanned["train"]
    channels, hw = probe(files, d.image_size)
    for k in ("val", "test"):
        if k in scanned and probe(scanned[k][0], d.image_size)[0] == 3:
            channels = 3
    readers, ys, idx = {}, {}, {}
    y = torch.tensor(labels, dtype=torch.long)
    vf = 0.0 if "val" in scanned else d.val_fraction
    tf = 0.0 if "test" in scanned else d.test_fraction
    tr, va, te = stratified_split(y, vf, tf, cfg.seed)
    train_reader = FolderReader(files, channels, hw, Sizing.of(d))
    for k, cut in (("train", tr), ("val", va), ("test", te)):
        if k != "train" and k in scanned:
            f, lab, cls = scanned[k]
            raw = RawSplit(None, torch.tensor(lab, dtype=torch.long), cls, paths[k])
            ys[k] = _align(raw, names, {"val": "validation", "test": "test"}[k], paths["train"])
            readers[k], idx[k] = FolderReader(f, channels, hw, Sizing.of(d)), np.arange(len(f))
        else:
            readers[k], idx[k], ys[k] = train_reader, cut.numpy(), y[cut]
    y_all = [ys["train"], ys["val"], ys["test"]]
    names = check_splits(cfg, y_all, names, True, total=len(y), test_fraction=tf, unit="images")
    shape = (channels, *hw)
    xs = [StreamedInputs(readers[k], idx[k], yk, shape, workers=d.workers, prefetch=d.prefetch,
                         skip_unreadable=d.skip_unreadable, where=paths[k] or paths["train"])
          for k, yk in zip(("train", "val", "test"), y_all)]
    mean, std = list(d.mean), list(d.std)
    if not mean and d.normalize == "imagenet":
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    elif not mean and d.normalize == "auto":
        mean, std = _stats(xs[0], cfg.seed)
    if mean:
        std = std or [1.0] * len(mean)
        if len(mean) not in (1, channels) or len(std) not in (1, channels):
            from ..errors import ConfigError
            raise ConfigError(f"data.mean/data.std give {len(mean)} values but the images have {channels} channels; "
                              "give one value per channel or one for all.", key="data.mean")
        for x in xs:
            x.set_normalisation(mean, std)
    bundle = DataBundle(xs[0], y_all[0], xs[1], y_all[1], xs[2], y_all[2], names, name=Path(cfg.data.path).name,
                        mean=mean, std=std, warnings=warnings, mode="streamed", mode_reason=reason)
    return bundle


def load_folder(cfg):
    """The folder source: class sub-folders in data.path (or its train/val/test folders), resident or streamed."""
    from ..errors import ConfigError
    from . import folder
    from .stream import choose_mode
    d = cfg.data
    if not d.path:
        raise ConfigError("data.source = \"folder\" needs data.path; set it to your image folder.", key="data.path")
    paths = {"train": d.path, "val": d.val_path, "test": d.test_path}
    found = folder.split_folders(Path(d.path).expanduser())
    if found:
        paths = {"train": str(found["train"]), "val": d.val_path or str(found.get("val", "")),
                 "test": d.test_path or str(found.get("test", ""))}
    scanned = {k: scan(Path(v).expanduser()) for k, v in paths.items() if v}
    channels, hw = probe(scanned["train"][0], d.image_size)
    mode, reason = choose_mode(cfg, sum(len(f) for f, _, _ in scanned.values()), (channels, *hw))
    if mode == "streamed":
        return load_streamed(cfg, paths, reason, [], scanned)
    bundle = folder.load_folder(cfg)
    bundle.mode_reason = reason
    return bundle
