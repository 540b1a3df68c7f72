"""Tensor files on the streamed path: a `.npy` pair (`x.npy` + `y.npy`, or `<name>_x.npy` + `<name>_y.npy`) or an
`.npz` (arrays `x` and `y`) whose inputs are memory-mapped and read sample by sample in the DataLoader workers.

A `.npy` maps directly. An `.npz` is a zip: its `x` member maps in place when it is stored uncompressed
(`np.savez`); a compressed one (`np.savez_compressed`) is converted once to a `.npy` in the cache folder (the run
folder's `cache/`), reused while the source file is unchanged, and the log says so. Labels are small and read whole.
Each sample gets the resident path's conversions (uint8 / 255, channels-first, `data.image_size`) and its split,
labels and normalisation statistics (the whole training split, read in chunks) are computed as `bundle.assemble`
computes them, so a streamed bundle reads back the resident one.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, KDError
from .stream import SampleReader, StreamedInputs, fmt_bytes
from .tensor_io import check_labels, labels_path, read_npz

STATS_CHUNK_BYTES = 64 * 2**20  # float64 bytes per chunk when the training statistics are read from the map


def _header(f, where: str):
    """(shape, fortran, dtype) of the .npy header at f's position, leaving f at the data."""
    try:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except ValueError as e:
        raise KDError(f"'{where}' is not a readable .npy array ({e}); it may be corrupt.") from None
    if dtype.hasobject:
        raise KDError(f"'{where}' holds Python objects, which are not loaded for safety; store numbers.")
    return shape, fortran, dtype


def _member(z: zipfile.ZipFile, key: str) -> zipfile.ZipInfo | None:
    for info in z.infolist():
        if info.filename.lower() == f"{key}.npy":
            return info
    return None


def _cache_name(path: Path, cache_dir: Path) -> Path:
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir / f"tensors-{path.stem}-{key}-x.npy"


def _unpack(path: Path, info: zipfile.ZipInfo, target: Path) -> None:
    """Write the compressed member to target as a .npy, atomically (a stopped conversion leaves no half file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".npy.part")
    try:
        with zipfile.ZipFile(path) as z, z.open(info) as src, open(tmp, "wb") as out:
            shape, fortran, dtype = _header(src, f"{path}:{info.filename}")
            np.lib.format.write_array_header_2_0(out, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                        "fortran_order": fortran, "shape": shape})
            while chunk := src.read(1 << 22):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        tmp.unlink(missing_ok=True)
        raise KDError(f"Converting 'x' of '{path}' to a memory-mappable '{target}' failed ({e}); free disk space "
                      "there, or save the file with np.savez (uncompressed) or as an x.npy / y.npy pair.") from None


def locate_inputs(path: Path, cache_dir: Path | None) -> tuple[dict, str]:
    """Where the inputs of a .npy or .npz lie as a raw array: {file, offset, shape, fortran, dtype}, and a note
    for the log when an .npz had to be converted (empty otherwise)."""
    if path.suffix.lower() == ".npy":
        with open(path, "rb") as f:
            shape, fortran, dtype = _header(f, str(path))
            return {"file": str(path), "offset": f.tell(), "shape": shape, "fortran": fortran, "dtype": dtype}, ""
    try:
        with zipfile.ZipFile(path) as z:
            info = _member(z, "x")
    except (zipfile.BadZipFile, OSError) as e:
        raise KDError(f"Tensor file '{path}' cannot be read as .npz ({e}); it may be corrupt.") from None
    if info is None:
        raise KDError(f"Tensor file '{path}' has no array 'x'; it needs 'x' (inputs) and 'y' (labels).")
    if info.compress_type == zipfile.ZIP_STORED:
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)
            if local[:4] != b"PK\x03\x04":
                raise KDError(f"Tensor file '{path}' has a damaged zip entry for 'x'; it may be corrupt.")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            f.seek(info.header_offset + 30 + name_len + extra_len)
            shape, fortran, dtype = _header(f, f"{path}:{info.filename}")
            return {"file": str(path), "offset": f.tell(), "shape": shape, "fortran": fortran, "dtype": dtype}, ""
    cache_dir = cache_dir or Path(tempfile.gettempdir()) / "kdstudio-cache"
    target = _cache_name(path, cache_dir)
    if not target.is_file():
        _unpack(path, info, target)
        done = "converted it once to"
    else:
        done = "reuses its conversion"
    where, note = locate_inputs(target, None)
    note = (f"'x' in '{path.name}' is compressed, so it cannot be memory-mapped; this run {done} '{target}' "
            f"({fmt_bytes(target.stat().st_size)})")
    return where, note


def sample_layout(shape: tuple) -> tuple[tuple, bool]:
    """(sample shape as the model sees it, channels-last?) for inputs of array shape (N, ...), as the resident
    reader lays them out."""
    rest = tuple(int(s) for s in shape[1:])
    if len(rest) == 2:
        return (1, *rest), False
    if len(rest) == 3 and rest[-1] in (1, 3, 4) and rest[0] not in (1, 3, 4):
        return (rest[2], rest[0], rest[1]), True
    return rest, False


def array_shape(path: Path) -> tuple[int, tuple]:
    """(samples, sample shape) of a .npy/.npz's inputs from its header alone (a compressed member is read
    up to its header, not converted)."""
    if path.suffix.lower() == ".npz":
        try:
            with zipfile.ZipFile(path) as z:
                info = _member(z, "x")
                if info is None:
                    raise KDError(f"Tensor file '{path}' has no array 'x'; it needs 'x' (inputs) and 'y' (labels).")
                with z.open(info) as f:
                    shape = _header(f, f"{path}:{info.filename}")[0]
        except (zipfile.BadZipFile, OSError) as e:
            raise KDError(f"Tensor file '{path}' cannot be read as .npz ({e}); it may be corrupt.") from None
    else:
        shape = locate_inputs(path, None)[0]["shape"]
    if len(shape) < 2:
        raise KDError(f"'x' in '{path}' has shape {tuple(shape)}; it needs one row per sample, (N, features) or "
                      "(N, channels, height, width).")
    return int(shape[0]), sample_layout(shape)[0]


class ArrayReader(SampleReader):
    """One row of a memory-mapped array as a float32 sample, converted as the resident tensors reader converts it;
    the map is opened in each process that reads (it does not travel to the workers)."""

    def __init__(self, where: dict, image_size: int, label: str):
        self.where, self.image_size, self.label = where, image_size, label
        self.sample_shape, self.channels_last = sample_layout(where["shape"])
        self._mm = None

    def __getstate__(self):
        return {**self.__dict__, "_mm": None}

    def __len__(self) -> int:
        return int(self.where["shape"][0])

    def array(self) -> np.ndarray:
        """The memory map of the whole array."""
        if self._mm is None:
            w = self.where
            self._mm = np.memmap(w["file"], dtype=w["dtype"], mode="r", offset=w["offset"], shape=tuple(w["shape"]),
                                 order="F" if w["fortran"] else "C")
        return self._mm

    def convert(self, a: np.ndarray) -> torch.Tensor:
        """Rows (n, ...) as read → float32 samples (n, C, H, W) or (n, F), resized to data.image_size."""
        x = torch.from_numpy(np.array(a, copy=True, order="C"))  # a map is read-only; the copy is one batch
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if x.dim() == 3:
            x = x.unsqueeze(1)
        elif self.channels_last:
            x = x.permute(0, 3, 1, 2).contiguous()
        if self.image_size and x.shape[-2:] != (self.image_size, self.image_size):
            x = torch.nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                                align_corners=False, antialias=x.shape[-1] > self.image_size)
        return x

    def read(self, i: int) -> torch.Tensor:
        """Sample `i`, converted."""
        try:
            x = self.convert(self.array()[i:i + 1])[0]
        except OSError as e:
            raise KDError(f"Sample {i} of '{self.label}' cannot be read ({e}); the file may have been changed or "
                          "removed during the run.") from None
        if not torch.isfinite(x).all():
            raise KDError(f"Sample {i} of '{self.label}' contains NaN or infinite values; clean the data.")
        return x


def _stats(reader: ArrayReader, index: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel (per-feature for flat inputs) mean and unbiased std of the training split, in float64 chunks:
    the figures `bundle.normalise` computes from the whole split."""
    order = np.sort(index)  # sorted reads walk the map forward
    chunk = max(1, STATS_CHUNK_BYTES // (8 * int(np.prod(reader.sample_shape))))
    dims = (0, 2, 3) if len(reader.sample_shape) == 3 else (0,) if len(reader.sample_shape) == 1 else \
        (0,) + tuple(range(2, 1 + len(reader.sample_shape)))
    total, count = None, 0
    for s in range(0, len(order), chunk):
        x = reader.convert(reader.array()[order[s:s + chunk]]).double()
        part = x.sum(dim=dims)
        total = part if total is None else total + part
        count += x.numel() // part.numel()
    mean = total / count
    shape = (1, -1) + (1,) * (len(reader.sample_shape) - 1)
    sq = None
    for s in range(0, len(order), chunk):
        x = reader.convert(reader.array()[order[s:s + chunk]]).double()
        part = ((x - mean.view(shape)) ** 2).sum(dim=dims)
        sq = part if sq is None else sq + part
    if len(reader.sample_shape) == 1 and len(order) <= 1:
        std = torch.ones_like(mean)
    else:
        std = (sq / max(count - 1, 1)).sqrt()
    return mean.float().tolist(), std.float().tolist()


def _labels(path: Path, n: int, npy_names: list[str] | None = None):
    """(labels, class names or None) of one file, checked as the resident reader checks them."""
    if path.suffix.lower() == ".npy":
        ypath = labels_path(path)
        try:
            y = np.load(ypath, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise KDError(f"Labels file '{ypath}' cannot be read ({e}); save the labels of '{path.name}' there with "
                          "np.save (one class index per sample).") from None
        names = npy_names
    else:
        raw = read_npz(path, skip=("x",))
        y, names = raw.get("y"), raw.get("class_names")
        if y is None:
            raise KDError(f"Tensor file '{path}' has no array 'y'; it needs 'x' (inputs) and 'y' (labels).")
    return check_labels(path, n, torch.as_tensor(np.asarray(y)), names)


def load_streamed(cfg, paths: dict[str, str], reason: str, warnings: list[str], cache_dir: Path | None,
                  class_names: dict[str, list[str] | None] | None = None):
    """The tensors source on the streamed path: a DataBundle whose inputs are StreamedInputs over memory maps
    (`class_names`: per split, the names of .npy labels that are class numbers of named classes, as a converted
    CSV has them)."""
    from .bundle import DataBundle, RawSplit, _align, _check_label_ids, check_splits, stratified_split
    d = cfg.data
    readers, labels, notes = {}, {}, []
    for k, p in paths.items():
        if not p:
            continue
        path = Path(p).expanduser()
        where, note = locate_inputs(path, cache_dir)
        if note:
            notes.append(note)
        readers[k] = ArrayReader(where, d.image_size, str(path))
        if len(readers[k].where["shape"]) < 2:
            raise KDError(f"'x' in '{path}' has shape {tuple(where['shape'])}; it needs one row per sample, "
                          "(N, features) or (N, channels, height, width).")
        if readers[k].channels_last:
            warnings.append(f"'x' in '{path.name}' looked channels-last (N, H, W, C); transposed to (N, C, H, W).")
        if d.image_size and len(readers[k].sample_shape) != 3:
            raise ConfigError(f"data.image_size = {d.image_size} resizes images, but the inputs from '{path}' have "
                              f"shape {readers[k].sample_shape}; set data.image_size = 0.", key="data.image_size")
        labels[k] = _labels(path, len(readers[k]), (class_names or {}).get(k))
    y, names = labels["train"]
    named = names is not None
    which = {"train": "training", "val": "validation", "test": "test"}
    for k, (yk, _) in labels.items():
        if len(yk) and not named:
            _check_label_ids(RawSplit(None, yk, None, paths[k]), which[k])
    names = list(names) if named else [str(i) for i in range(int(y.max()) + 1 if len(y) else 0)]
    shape = readers["train"].sample_shape
    vf = 0.0 if "val" in readers else d.val_fraction
    tf = 0.0 if "test" in readers else d.test_fraction
    tr, va, te = stratified_split(y, vf, tf, cfg.seed)
    rd, idx, ys = {}, {}, {}
    for k, cut in (("train", tr), ("val", va), ("test", te)):
        if k != "train" and k in readers:
            if readers[k].sample_shape != shape:
                hint = " or set data.image_size to resize every split" if len(shape) == 3 else ""
                raise KDError(f"The {which[k]} inputs from '{paths[k]}' have shape {readers[k].sample_shape} but the "
                              f"training inputs have {shape}; use the same shape{hint}.")
            yk, nk = labels[k]
            yk = _align(RawSplit(None, yk, nk, paths[k]), names, which[k], paths["train"])
            if not named and len(yk) and int(yk.max()) >= len(names):
                names += [str(i) for i in range(len(names), int(yk.max()) + 1)]
            rd[k], idx[k], ys[k] = readers[k], np.arange(len(yk)), yk
        else:
            rd[k], idx[k], ys[k] = readers["train"], cut.numpy(), y[cut]
    y_all = [ys["train"], ys["val"], ys["test"]]
    names = check_splits(cfg, y_all, names, named, total=len(y), test_fraction=tf)
    xs = [StreamedInputs(rd[k], idx[k], yk, shape, workers=d.workers, prefetch=d.prefetch,
                         where=paths.get(k) or paths["train"]) for k, yk in zip(("train", "val", "test"), y_all)]
    channels = shape[0]
    mean, std = list(d.mean), list(d.std)
    if not mean and d.normalize == "imagenet":
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    elif not mean and d.normalize == "auto":
        mean, std = _stats(rd["train"], idx["train"])
    if mean:
        std = std or [1.0] * len(mean)
        what = "channels" if len(shape) > 1 else "features"
        if len(mean) not in (1, channels) or len(std) not in (1, channels):
            src = "data.mean/data.std" if d.mean else f"data.normalize = \"{d.normalize}\""
            raise ConfigError(f"{src} gives {len(mean)} values but the inputs have {channels} {what}; give one value "
                              f"per {what[:-1]} or one for all.", key="data.mean" if d.mean else "data.normalize")
        std = [s if s > 1e-8 else 1.0 for s in std]
        for x in xs:
            x.set_normalisation(mean, std)
    if notes:
        reason = f"{reason}; " + "; ".join(notes)
    return DataBundle(xs[0], y_all[0], xs[1], y_all[1], xs[2], y_all[2], names, name=Path(d.path).stem,
                      mean=mean, std=std, warnings=warnings, mode="streamed", mode_reason=reason)
