"""Data sources → a DataBundle of train/val/test tensors, split with a fixed seed.

Each source is a `load_<name>(cfg) -> DataBundle` function in this package, registered by name in
`config.schema.SOURCES` (torch-free, so the config can list and check the names before torch loads). The sources
build their bundle from the pieces in `bundle.py`, so none imports this package back.
"""

from __future__ import annotations

from ..config.schema import SOURCES
from .bundle import (  # noqa: F401  (the data API: these names are imported from kdstudio.core.data)
    DataBundle, RawSplit, assemble, from_arrays, load_splits, normalise, stratified_split,
)


STREAMING_SOURCES = ("folder", "tensors", "csv")  # the sources that can be read per batch (data.mode = "streamed")


def load_data(cfg, cache_dir=None) -> DataBundle:
    """Load the data set the config names, split and normalised (an unknown source names the nearest one), on the
    resident or the streamed path (`bundle.mode`, with the reason in `bundle.mode_reason`); `cache_dir` (the run
    folder's cache/) holds what a streamed tensors file needs converted once."""
    from . import preprocess
    load = SOURCES.get(cfg.data.source)
    early: list[str] = []
    cfg, recipe = preprocess.resolve(cfg, early)  # the teacher's own preprocessing, into the data settings
    if recipe is not None:
        from .folder import train_class_names
        cfg = preprocess.order_classes(cfg, train_class_names(cfg.data), recipe, early)
    bundle = load(cfg, cache_dir=cache_dir) if cfg.data.source in ("tensors", "csv") else load(cfg)
    bundle.warnings[:0] = early
    if len(bundle.input_shape) == 3:
        d = cfg.data
        bundle.inputs = recipe.describe() if recipe else \
            f"inputs: {preprocess.describe_inputs(d.image_size, d.resize, d.interpolation, bundle.mean, bundle.std, bundle.input_shape)}"
        bundle.preprocessing = recipe.to_dict() if recipe else None
    if not bundle.mode_reason:
        n = sum(bundle.sizes().values())
        size = n * (bundle.x_train[:1].numel() or 1) * 4
        from .stream import fmt_bytes
        bundle.mode_reason = (f"resident: {n:,} samples × {'×'.join(map(str, bundle.input_shape))} = "
                              f"{fmt_bytes(size)}, read whole by the {cfg.data.source} source")
        if cfg.data.mode == "streamed" and cfg.data.source not in STREAMING_SOURCES:
            bundle.warnings.append(f"data.mode = \"streamed\" applies to image folders, CSV and .npy/.npz tensor files "
                                   f"only; the {cfg.data.source} source is read whole, so this run keeps its data "
                                   "resident.")
    from .augment import SAMPLE_KINDS, TORCHVISION_KINDS, torchvision_transform
    if cfg.data.augment in SAMPLE_KINDS and bundle.mode != "streamed":
        from ..errors import ConfigError
        raise ConfigError(f"data.augment = \"{cfg.data.augment}\" augments each sample in the data workers of the "
                          f"streamed path, but this {cfg.data.source} data is resident; set data.mode = \"streamed\" "
                          "(image folders and .npy/.npz tensor files), or use crop_flip, which runs on the device.",
                          key="data.augment")
    if cfg.data.augment in TORCHVISION_KINDS:
        torchvision_transform(cfg.data.augment)  # a missing torchvision is one sentence now, not in a worker
    return bundle
