"""Metrics of a trained model: accuracy, size, CPU latency."""

from __future__ import annotations

import copy
import io
import statistics
import time

import torch
from torch import nn


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits for all of `x` in eval mode (the model's train/eval mode is restored after)."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i:i + batch_size]).float() for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy as a fraction in [0, 1]."""
    if len(y) == 0:
        return float("nan")
    return (predict_logits(model, x).argmax(1) == y).float().mean().item()


def state_dict_bytes(model: nn.Module) -> int:
    """Size of the model's weights when saved with torch.save (its size on disk as a state_dict)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


@torch.inference_mode()
def cpu_latency_ms(model: nn.Module, input_shape: tuple, batch: int = 1, repeats: int = 50,
                   warmup: int = 10) -> float:
    """Median wall time of one forward pass on the CPU (a copy of the model, eval mode) in milliseconds."""
    m = copy.deepcopy(model).to("cpu").eval()
    x = torch.randn(batch, *input_shape)
    for _ in range(warmup):
        m(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        m(x)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)
