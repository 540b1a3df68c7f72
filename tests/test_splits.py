"""Train/val/test splits: stratified, of the asked size even with many small classes, never an empty test set."""

import pytest
import torch

from kdstudio.core.config import Config
from kdstudio.core.data import from_arrays, stratified_split
from kdstudio.core.errors import KDError


def test_split_sizes_follow_the_fractions_with_many_small_classes():
    y = torch.arange(384) % 100  # 3-4 samples per class: per-class rounding alone would give empty splits
    tr, va, te = stratified_split(y, 0.1, 0.1, seed=0)
    assert (len(tr), len(va), len(te)) == (308, 38, 38)
    assert len(set(torch.cat([tr, va, te]).tolist())) == 384  # a partition: nothing lost, nothing twice


def test_split_is_stratified_and_seeded():
    y = torch.arange(1000) % 4
    a = stratified_split(y, 0.2, 0.2, seed=1)
    b = stratified_split(y, 0.2, 0.2, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert torch.bincount(y[a[2]]).tolist() == [50, 50, 50, 50]


def test_empty_test_split_is_a_clear_error():
    cfg = Config()
    cfg.data.test_fraction, cfg.data.batch_size = 0.0, 8
    with pytest.raises(KDError, match="test split is empty"):
        from_arrays(torch.randn(40, 3), torch.arange(40) % 2, ["a", "b"], cfg, name="x")
