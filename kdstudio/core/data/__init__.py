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


def load_data(cfg) -> DataBundle:
    """Load the data set the config names, split and normalised (an unknown source names the nearest one)."""
    return SOURCES.get(cfg.data.source)(cfg)
