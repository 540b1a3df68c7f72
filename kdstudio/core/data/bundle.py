"""The data set as the pipeline sees it: a DataBundle of train/val/test tensors, split with a fixed seed and
normalised; and the pieces every source assembles one from (RawSplit, from_arrays, assemble, load_splits)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..errors import ConfigError, KDError


@dataclass
class DataBundle:
    """Everything a run needs to know about its data: three splits (CPU tensors, or streamed inputs decoded per
    batch), classes and input shape."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    name: str = ""
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # things the user should see (skipped files, guesses)
    notes: list[str] = field(default_factory=list)     # facts the log states once (e.g. labels wrong on purpose)
    mode: str = "resident"      # resident: the x_* are tensors; streamed: they are data.stream.StreamedInputs
    mode_reason: str = ""       # the sentence saying which path and why (log, Data page)
    inputs: str = ""            # how inputs were prepared, in words (preprocess.describe_inputs, + where from)
    preprocessing: dict | None = None  # the teacher's recipe that was applied (preprocess.Preprocessing.to_dict)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple:
        """Shape of one input, without the batch dimension."""
        return tuple(self.x_train.shape[1:])

    def sizes(self) -> dict[str, int]:
        """Samples per split."""
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def _quota(counts: list[int], fraction: float) -> list[int]:
    """Per-class sizes that add up to round(N * fraction): floors first, then one more for the classes with the
    largest remainders (so many small classes still give a split of the asked size, never an empty one)."""
    exact = [n * fraction for n in counts]
    out = [math.floor(e) for e in exact]
    short = round(sum(counts) * fraction) - sum(out)
    for i in sorted(range(len(counts)), key=lambda i: exact[i] - out[i], reverse=True)[:max(short, 0)]:
        out[i] += 1
    return out


def stratified_split(y: torch.Tensor, val_fraction: float, test_fraction: float, seed: int):
    """Indices (train, val, test): every class split by the fractions, shuffled with `seed`."""
    g = torch.Generator().manual_seed(seed)
    classes = torch.unique(y)
    members = []
    for c in classes:
        idx = torch.nonzero(y == c).flatten()
        members.append(idx[torch.randperm(len(idx), generator=g)])
    counts = [len(m) for m in members]
    n_test = _quota(counts, test_fraction)
    n_val = [min(v, n - t) for v, n, t in zip(_quota(counts, val_fraction), counts, n_test)]
    parts: list[list[torch.Tensor]] = [[], [], []]
    for idx, nt, nv in zip(members, n_test, n_val):
        parts[2].append(idx[:nt])
        parts[1].append(idx[nt:nt + nv])
        parts[0].append(idx[nt + nv:])
    out = []
    for p in parts:
        cat = torch.cat(p) if p else torch.empty(0, dtype=torch.long)
        out.append(cat[torch.randperm(len(cat), generator=g)])
    return tuple(out)


def normalise(bundle: DataBundle, how: str, mean: list | None = None, std: list | None = None) -> DataBundle:
    """Normalise every split per channel with statistics of the training split (or explicit ones)."""
    x = bundle.x_train
    if how == "none" and not mean:
        return bundle
    dims = [0] + list(range(2, x.dim())) if x.dim() > 2 else [0]
    if mean:
        m = torch.tensor(mean, dtype=torch.float32)
        s = torch.tensor(std, dtype=torch.float32) if std else torch.ones_like(m)
    elif how == "imagenet":
        m = torch.tensor([0.485, 0.456, 0.406])
        s = torch.tensor([0.229, 0.224, 0.225])
    else:
        if x.dim() > 2:  # per channel
            m, s = x.mean(dim=dims), x.std(dim=dims)
        else:  # flat features (CSV, tables): standardise each feature, as columns have their own units
            m, s = x.mean(dim=0), x.std(dim=0) if len(x) > 1 else torch.ones(x.shape[1])
    channels = x.shape[1] if x.dim() > 1 else 1
    if len(m) not in (1, channels) or len(s) not in (1, channels):
        what = "channels" if x.dim() > 2 else "features"
        src = "data.mean/data.std" if mean else f"data.normalize = \"{how}\""
        raise ConfigError(f"{src} gives {len(m)} values but the inputs have {channels} {what}; give one value per "
                          f"{what[:-1]} or one for all.", key="data.mean" if mean else "data.normalize")
    s = torch.where(s > 1e-8, s, torch.ones_like(s))
    shape = [1, -1] + [1] * (x.dim() - 2) if x.dim() > 2 else [1, -1] if len(m) > 1 else [1, 1]
    for name in ("x_train", "x_val", "x_test"):
        t = getattr(bundle, name)
        setattr(bundle, name, (t - m.view(shape)) / s.view(shape))
    bundle.mean, bundle.std = m.tolist(), s.tolist()
    return bundle


@dataclass
class RawSplit:
    """One split as a source read it: inputs, int64 labels, and the class names (None = unnamed integer labels)."""

    x: torch.Tensor
    y: torch.Tensor
    class_names: list[str] | None = None
    where: str = ""


def from_arrays(x: torch.Tensor, y: torch.Tensor, class_names: list[str], cfg, name: str) -> DataBundle:
    """Split full-data tensors by the config's fractions and normalise by the training split."""
    return assemble(cfg, RawSplit(x, y, list(class_names), name), name=name)


def _align(split: RawSplit, names: list[str], which: str, train_where: str) -> torch.Tensor:
    """Labels of a val/test split re-indexed onto the training split's class names."""
    if split.class_names is None:
        return split.y
    index = {n: i for i, n in enumerate(names)}
    extra = [n for n in split.class_names if n not in index]
    if extra:
        raise KDError(f"The {which} data '{split.where}' has class '{extra[0]}', which the training data "
                      f"'{train_where}' does not have; use the same class names in every split.")
    table = torch.tensor([index[n] for n in split.class_names], dtype=torch.long)
    return table[split.y] if len(split.y) else split.y


def _map_class_names(y_all: list[torch.Tensor], names: list[str], named: bool, wanted: list) -> list[str]:
    """Apply data.class_names (the teacher's output order) in place; returns the bundle's class names."""
    wanted = [str(w) for w in wanted]
    dup = sorted({w for w in wanted if wanted.count(w) > 1})
    if dup:
        raise ConfigError(f"data.class_names lists '{dup[0]}' more than once; each class must appear once.",
                          key="data.class_names")
    if named:
        index = {n: i for i, n in enumerate(wanted)}
        missing = [n for n in names if n not in index]
        if missing:
            raise ConfigError(f"The data's class '{missing[0]}' is not in data.class_names ({', '.join(wanted[:10])}"
                              f"{', ...' if len(wanted) > 10 else ''}); list every class of the data, in the "
                              "teacher's output order.", key="data.class_names")
        table = torch.tensor([index[n] for n in names], dtype=torch.long)
        for i, y in enumerate(y_all):
            y_all[i] = table[y] if len(y) else y
    else:
        top = max((int(y.max()) for y in y_all if len(y)), default=-1)
        if top >= len(wanted):
            raise ConfigError(f"data.class_names has {len(wanted)} names but the labels go up to {top}; give one "
                              "name per class, in the teacher's output order.", key="data.class_names")
    return wanted


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                           antialias=x.shape[-1] > size)


def assemble(cfg, train: RawSplit, val: RawSplit | None = None, test: RawSplit | None = None, *, name: str,
             warnings: list[str] | None = None) -> DataBundle:
    """Splits as read → a checked, class-mapped, resized, normalised DataBundle.

    Missing val/test splits are cut from `train` by the config's fractions (stratified, seeded).
    """
    d = cfg.data
    named = train.class_names is not None
    for which, sp in (("training", train), ("validation", val), ("test", test)):
        if sp is not None and len(sp.y) and not named:
            _check_label_ids(sp, which)
    y_max = int(train.y.max()) if len(train.y) else -1
    names = list(train.class_names) if named else [str(i) for i in range(y_max + 1)]
    parts = {"training": train, "validation": val, "test": test}
    for which, sp in parts.items():
        if sp is None:
            continue
        if not torch.isfinite(sp.x).all():
            raise KDError(f"The {which} inputs from '{sp.where}' contain NaN or infinite values; clean the data.")
        if d.image_size and sp.x.dim() != 4:
            raise ConfigError(f"data.image_size = {d.image_size} resizes images, but the {which} inputs from "
                              f"'{sp.where}' have shape {tuple(sp.x.shape[1:])}; set data.image_size = 0.",
                              key="data.image_size")
        if d.image_size:
            sp.x = _resize(sp.x, d.image_size)
        if sp is not train:
            if sp.x.shape[1:] != train.x.shape[1:]:
                hint = " or set data.image_size to resize every split" if sp.x.dim() == 4 else ""
                raise KDError(f"The {which} inputs from '{sp.where}' have shape {tuple(sp.x.shape[1:])} but the "
                              f"training inputs have {tuple(train.x.shape[1:])}; use the same shape{hint}.")
            sp.y = _align(sp, names, which, train.where)
            if not named and len(sp.y) and int(sp.y.max()) >= len(names):
                names += [str(i) for i in range(len(names), int(sp.y.max()) + 1)]
    x, y = train.x.float(), train.y.long()
    vf = 0.0 if val is not None else d.val_fraction
    tf = 0.0 if test is not None else d.test_fraction
    tr, va, te = stratified_split(y, vf, tf, cfg.seed)
    xs = [x[tr], x[va] if val is None else val.x.float(), x[te] if test is None else test.x.float()]
    ys = [y[tr], y[va] if val is None else val.y.long(), y[te] if test is None else test.y.long()]
    names = check_splits(cfg, ys, names, named, total=len(y), test_fraction=tf)
    bundle = DataBundle(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], names, name=name, warnings=list(warnings or []))
    return normalise(bundle, d.normalize, d.mean, d.std)


def check_splits(cfg, ys: list[torch.Tensor], names: list[str], named: bool, *, total: int, test_fraction: float,
                 unit: str = "samples") -> list[str]:
    """What every source (resident or streamed) checks once its splits are cut: the class names in the teacher's
    order (data.class_names), a non-empty test split, at least one batch and two classes to train on. Returns the
    class names."""
    d = cfg.data
    if d.class_names:
        names = _map_class_names(ys, names, named, d.class_names)
    if len(ys[2]) == 0:
        raise KDError(f"The test split is empty ({total} {unit}, data.test_fraction = {test_fraction:g}); raise "
                      f"data.test_fraction, give data.test_path, or add {'images' if unit == 'images' else 'data'}.")
    if len(ys[0]) < d.batch_size:
        raise KDError(f"The training split has {len(ys[0])} {unit}, fewer than one batch of {d.batch_size}; "
                      f"lower data.batch_size or add {'images' if unit == 'images' else 'data'}.")
    present = torch.unique(ys[0])
    if len(present) < 2:  # one class: every model scores 100 % and learns nothing
        only = names[int(present[0])] if len(present) else "none"
        raise KDError(f"The training split holds only one class ('{only}'); a classifier needs at least two classes "
                      "with examples; check data.path and the labels.")
    return names


MAX_CLASSES = 100_000


def _check_label_ids(sp: RawSplit, which: str) -> None:
    """Labels are class indices 0..N-1: a negative or huge id (999,999,999) is refused before anything is sized
    by it (a class-name list of that length took 9.5 GB)."""
    lo, hi = int(sp.y.min()), int(sp.y.max())
    if lo < 0:
        raise KDError(f"The {which} labels from '{sp.where}' include {lo}; labels must be class indices 0, 1, 2, … "
                      "(or class names in a CSV).")
    if hi >= MAX_CLASSES or hi >= 100 * len(torch.unique(sp.y)) + 1000:
        raise KDError(f"The {which} labels from '{sp.where}' go up to {hi:,} for {len(torch.unique(sp.y)):,} "
                      f"distinct classes; labels must be class indices 0 to N-1 (at most {MAX_CLASSES:,} classes): "
                      "renumber them, or give class names in a CSV.")


def load_splits(cfg, read, name: str, paths: dict | None = None, warnings: list[str] | None = None) -> DataBundle:
    """Read data.path (and data.val_path / data.test_path when set) with `read(path) -> RawSplit`; assemble."""
    from pathlib import Path
    d = cfg.data
    paths = paths or {"train": d.path, "val": d.val_path, "test": d.test_path}
    if not paths.get("train"):
        raise ConfigError(f"data.source = \"{d.source}\" needs data.path; set it to your data.", key="data.path")
    splits = {k: read(Path(v).expanduser()) if v else None for k, v in paths.items()}
    return assemble(cfg, splits["train"], splits.get("val"), splits.get("test"), name=name, warnings=warnings)
