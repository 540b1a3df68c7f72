"""Logit methods beside Hinton KD: the source document's soft MSE, logit regression, DKD and DIST."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import LogitMethod, check_nonneg, check_temperature, check_unit


class SoftMSE(LogitMethod):
    """Soft MSE: alpha·mean_i Σ_j (softmax(t_i/T)_j − softmax(s_i/T)_j)² + (1 − alpha)·CE(s, y).

    Source: the project's seed document, L = 1/N Σ_i Σ_j (y_ij − softmax(φ_i)_j)², with y the teacher's
    probabilities; T = 1 reproduces it exactly. Terms: "soft_mse", "ce", "total".
    """

    def __init__(self, temperature: float = 1.0, alpha: float = 0.9):
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.alpha = check_unit("alpha", alpha, key="distill.alpha")

    def forward(self, student_logits, teacher_logits, targets, *, epoch: int = 0):
        s, t, T = student_logits.float(), teacher_logits.float().detach(), self.temperature
        diff = F.softmax(t / T, dim=1) - F.softmax(s / T, dim=1)
        mse = diff.pow(2).sum(dim=1).mean()
        ce = F.cross_entropy(s, targets)
        return {"soft_mse": mse, "ce": ce, "total": self.alpha * mse + (1.0 - self.alpha) * ce}


class LogitMSE(LogitMethod):
    """Logit regression: alpha·mean over all entries of (s − t)² + (1 − alpha)·CE(s, y).

    Paper: Ba & Caruana, "Do Deep Nets Really Need to be Deep?", NeurIPS 2014. Terms: "logit_mse", "ce", "total".
    With several teachers the target is T·log of their averaged softened outputs (a log-probability scale).
    """

    def __init__(self, alpha: float = 0.9):
        super().__init__()
        self.alpha = check_unit("alpha", alpha, key="distill.alpha")

    def forward(self, student_logits, teacher_logits, targets, *, epoch: int = 0):
        s, t = student_logits.float(), teacher_logits.float().detach()
        mse = F.mse_loss(s, t)
        ce = F.cross_entropy(s, targets)
        return {"logit_mse": mse, "ce": ce, "total": self.alpha * mse + (1.0 - self.alpha) * ce}


class DKD(LogitMethod):
    """Decoupled KD: CE(s, y) + min(epoch/warmup_epochs, 1)·(alpha·TCKD + beta·NCKD), both KLs at T, ×T² (epoch from 1).

    Paper: Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022. TCKD is the KL between the binary
    (target class vs. the rest) distributions; NCKD the KL between the distributions over the non-target
    classes. Terms: "ce", "tckd", "nckd", "total". Pass `epoch=` for the warm-up.
    """

    def __init__(self, temperature: float = 4.0, alpha: float = 1.0, beta: float = 8.0, warmup_epochs: int = 20):
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.alpha = check_nonneg("alpha", alpha, key="distill.alpha")
        self.beta = check_nonneg("beta", beta)
        self.warmup_epochs = int(check_nonneg("warmup_epochs", warmup_epochs))

    def forward(self, student_logits, teacher_logits, targets, *, epoch: int = 0):
        s, t, T = student_logits.float(), teacher_logits.float().detach(), self.temperature
        gt = F.one_hot(targets, s.shape[1]).bool()
        n = s.shape[0]

        def binary_logp(z):  # log [p_target, p_rest] at temperature T
            lse = torch.logsumexp(z / T, dim=1, keepdim=True)
            rest = torch.logsumexp((z / T).masked_fill(gt, float("-inf")), dim=1, keepdim=True)
            return torch.cat([(z / T).gather(1, targets[:, None]), rest], dim=1) - lse

        tckd = F.kl_div(binary_logp(s), binary_logp(t), reduction="sum", log_target=True) * T * T / n
        # the paper's trick: push the target logit far down so the softmax covers the other classes only
        nckd = F.kl_div(F.log_softmax(s / T - 1000.0 * gt, dim=1), F.softmax(t / T - 1000.0 * gt, dim=1),
                        reduction="sum") * T * T / n
        ce = F.cross_entropy(s, targets)
        # `epoch` is 0-based, so the first epoch already distils with weight 1/warmup_epochs (as mdistiller counts)
        warm = min((epoch + 1) / self.warmup_epochs, 1.0) if self.warmup_epochs > 0 else 1.0
        return {"ce": ce, "tckd": tckd, "nckd": nckd, "total": ce + warm * (self.alpha * tckd + self.beta * nckd)}


def _pearson_gap(a, b, eps: float = 1e-8):
    """1 − mean over rows of the Pearson correlation between the rows of a and b."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    r = (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)
    return 1.0 - r.mean()


class DIST(LogitMethod):
    """DIST: CE(s, y) + beta·T²·(1 − ρ_inter) + gamma·T²·(1 − ρ_intra) on softmax(·/T).

    Paper: Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022. ρ_inter is the mean
    Pearson correlation per sample across classes, ρ_intra per class across the batch (needs ≥ 2 samples; a
    batch of one gives 0 for that term). Terms: "ce", "dist_inter", "dist_intra", "total".
    """

    min_batch = 2

    def __init__(self, temperature: float = 4.0, beta: float = 1.0, gamma: float = 1.0):
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.beta = check_nonneg("beta", beta)
        self.gamma = check_nonneg("gamma", gamma)

    def forward(self, student_logits, teacher_logits, targets, *, epoch: int = 0):
        s, t, T = student_logits.float(), teacher_logits.float().detach(), self.temperature
        ps, pt = F.softmax(s / T, dim=1), F.softmax(t / T, dim=1)
        inter = T * T * _pearson_gap(ps, pt)
        intra = T * T * _pearson_gap(ps.t(), pt.t()) if s.shape[0] > 1 else s.new_zeros(())
        ce = F.cross_entropy(s, targets)
        return {"ce": ce, "dist_inter": inter, "dist_intra": intra,
                "total": ce + self.beta * inter + self.gamma * intra}
