"""Hinton et al. 2015, "Distilling the Knowledge in a Neural Network" (arXiv:1503.02531)."""

from __future__ import annotations

import torch.nn.functional as F

from .base import LogitMethod, check_temperature, check_unit


class KD(LogitMethod):
    """Hinton KD: alpha·T²·KL(softmax(t/T) ‖ softmax(s/T)) (batch mean) + (1 − alpha)·CE(s, y).

    Paper: Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015 (arXiv:1503.02531).
    Terms: "kd" (the T²-scaled KL), "ce" (cross-entropy on labels), "total".
    """

    def __init__(self, temperature: float = 4.0, alpha: float = 0.9):
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.alpha = check_unit("alpha", alpha, key="distill.alpha")

    def forward(self, student_logits, teacher_logits, targets, *, epoch: int = 0):
        s = student_logits.float()
        t = teacher_logits.float().detach()
        T = self.temperature
        kl = F.kl_div(F.log_softmax(s / T, dim=1), F.log_softmax(t / T, dim=1), reduction="batchmean",
                      log_target=True) * (T * T)
        ce = F.cross_entropy(s, targets)
        return {"kd": kl, "ce": ce, "total": self.alpha * kl + (1.0 - self.alpha) * ce}
