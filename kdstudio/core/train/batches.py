"""How an epoch is cut into batches (torch-free: the run plan counts steps before torch loads)."""

from __future__ import annotations


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps in one epoch of n_train samples (a last partial batch of one sample is dropped: a batch of
    one breaks batch norm)."""
    return max(1, n_train // batch_size + (1 if n_train % batch_size >= 2 else 0))
