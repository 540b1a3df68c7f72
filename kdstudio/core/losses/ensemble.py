"""Several teachers seen as one: their softened outputs averaged (optionally weighted)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import check_temperature


class MultiTeacher(nn.Module):
    """Teacher ensemble whose logits z = T·log Σ_k w_k·softmax(t_k/T), so softmax(z/T) = Σ_k w_k·softmax(t_k/T).

    Any logit method then distils from the (weighted) average of the teachers' softened outputs at T, as in
    Hinton et al. 2015 (ensembles) and You et al., "Learning from Multiple Teacher Networks", KDD 2017.
    Weights are normalised to sum to 1; [] means equal weights. Layers are reachable as "teachers.<k>.<path>".
    """

    def __init__(self, teachers: list[nn.Module], weights: list[float] | None = None, temperature: float = 4.0):
        super().__init__()
        if not teachers:
            raise ConfigError("A multi-teacher needs at least one teacher.", key="teacher")
        weights = list(weights or [1.0] * len(teachers))
        if len(weights) != len(teachers):
            raise ConfigError(f"There are {len(teachers)} teachers but {len(weights)} teacher weights; give one "
                              "weight per teacher or none.", key="teacher.weights")
        if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(f"Teacher weights must be numbers ≥ 0 with a positive sum, not {weights}.",
                              key="teacher.weights")
        self.teachers = nn.ModuleList(teachers)
        self.temperature = check_temperature(temperature)
        w = torch.tensor(weights, dtype=torch.float32)
        self.register_buffer("log_weights", torch.log(w / w.sum()), persistent=False)

    def forward(self, x):
        """Ensemble logits (fp32) for the batch x."""
        T = self.temperature
        logp = torch.stack([F.log_softmax(t(x).float() / T, dim=1) for t in self.teachers])
        return T * torch.logsumexp(logp + self.log_weights.view(-1, 1, 1), dim=0)


def ensemble(teachers: list[nn.Module], weights: list[float] | None = None, temperature: float = 4.0) -> nn.Module:
    """One teacher unchanged; several wrapped in a MultiTeacher."""
    if len(teachers) == 1:
        return teachers[0]
    return MultiTeacher(teachers, weights, temperature)
