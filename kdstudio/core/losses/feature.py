"""Feature methods: FitNets hints, attention transfer, relational KD, similarity preserving, PKT.

Each compares features already captured and matched by `kdstudio.core.losses.matching` (hooks, adapters, pooling).
Terms are raw (unweighted); "total" weights them. Relation methods (rkd, sp, pkt) flatten each sample's
features and compare batch-by-batch relations, so their two layers may have any sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import FeatureMethod, check_nonneg


def _flat(x):
    return x.reshape(x.shape[0], -1)


class FitNet(FeatureMethod):
    """FitNets hint: weight·mean((adapter(f_s) − f_t)²), the adapter a 1×1 conv or linear layer when sizes differ.

    Paper: Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015. Terms: "fitnet", "total".
    """

    elementwise = True

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = check_nonneg("weight", weight)

    def pair_terms(self, s, t):
        return {"fitnet": F.mse_loss(s, t)}

    def weights(self):
        return {"fitnet": self.weight}


def attention_map(x, p: float = 2.0):
    """Zagoruyko's spatial attention: L2-normalised mean over channels of |x|^p, flattened to (B, H·W)."""
    return F.normalize(x.abs().pow(p).mean(dim=1).reshape(x.shape[0], -1), dim=1)


class AT(FeatureMethod):
    """Attention transfer: weight·mean((Q_s − Q_t)²) with Q = normalize(mean_c |f|^p) per sample.

    Paper: Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017. Needs 4-D (B, C, H, W)
    features; channel counts may differ, spatial sizes are pooled to the smaller. Terms: "at", "total".
    """

    needs_4d = True
    spatial = True

    def __init__(self, weight: float = 1000.0, p: float = 2.0):
        super().__init__()
        self.weight = check_nonneg("weight", weight)
        self.p = check_nonneg("p", p)

    def pair_terms(self, s, t):
        return {"at": (attention_map(s, self.p) - attention_map(t, self.p)).pow(2).mean()}

    def weights(self):
        return {"at": self.weight}


def pairwise_distances(e, rel_tol: float = 1e-6):
    """Euclidean distance matrix (B, B) of the rows of e; pairs closer than float precision count as 0."""
    sq = e.pow(2).sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * e @ e.t()
    tol = rel_tol * (sq[:, None] + sq[None, :]) + 1e-12
    return torch.where(d2 > tol, d2.clamp(min=1e-12).sqrt(), torch.zeros_like(d2))


def _normalised_distances(e):
    d = pairwise_distances(e)
    positive = (d > 0).sum()
    # mean of the positive distances without boolean indexing (which would sync with the host every step)
    mean = torch.where(positive > 0, d.sum() / positive.clamp(min=1), torch.ones_like(d.sum()))
    return d / mean


def angle_tensor(e):
    """cos of the angle at anchor a between samples b and c: ⟨e_b − e_a, e_c − e_a⟩/(‖·‖‖·‖), (B, B, B).

    Computed from the Gram matrix, so memory grows with B³, not B²·features; coincident points give 0.
    """
    g = e @ e.t()
    inner = g[None, :, :] - g[:, :, None] - g[:, None, :] + g.diagonal()[:, None, None]  # index [a, b, c]
    d = pairwise_distances(e)
    valid = (d[:, :, None] > 0) & (d[:, None, :] > 0)
    denom = d[:, :, None].clamp(min=1e-12) * d[:, None, :].clamp(min=1e-12)
    return torch.where(valid, inner / denom, torch.zeros_like(inner))


class RKD(FeatureMethod):
    """Relational KD: distance_weight·smoothL1(ψ_D(s), ψ_D(t)) + angle_weight·smoothL1(ψ_A(s), ψ_A(t)).

    Paper: Park et al., "Relational Knowledge Distillation", CVPR 2019. ψ_D: pairwise distances divided by
    their mean; ψ_A: cosines of the angles formed by every triplet. Needs ≥ 2 samples per batch (a batch of
    one gives 0). Terms: "rkd_distance", "rkd_angle", "total".
    """

    min_batch = 2

    def __init__(self, distance_weight: float = 25.0, angle_weight: float = 50.0):
        super().__init__()
        self.distance_weight = check_nonneg("distance_weight", distance_weight)
        self.angle_weight = check_nonneg("angle_weight", angle_weight)

    def pair_terms(self, s, t):
        s, t = _flat(s), _flat(t)
        if s.shape[0] < 2:
            z = s.sum() * 0.0
            return {"rkd_distance": z, "rkd_angle": z}
        dist = F.smooth_l1_loss(_normalised_distances(s), _normalised_distances(t))
        angle = F.smooth_l1_loss(angle_tensor(s), angle_tensor(t))
        return {"rkd_distance": dist, "rkd_angle": angle}

    def weights(self):
        return {"rkd_distance": self.distance_weight, "rkd_angle": self.angle_weight}


class SP(FeatureMethod):
    """Similarity-preserving KD: weight·‖norm_rows(F_s F_sᵀ) − norm_rows(F_t F_tᵀ)‖²_F / B².

    Paper: Tung & Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019. Terms: "sp", "total".
    """

    def __init__(self, weight: float = 3000.0):
        super().__init__()
        self.weight = check_nonneg("weight", weight)

    def pair_terms(self, s, t):
        s, t = _flat(s), _flat(t)
        gs, gt = F.normalize(s @ s.t(), dim=1), F.normalize(t @ t.t(), dim=1)
        return {"sp": (gs - gt).pow(2).sum() / (s.shape[0] ** 2)}

    def weights(self):
        return {"sp": self.weight}


def _similarity_distribution(x, eps: float):
    x = x / (x.norm(dim=1, keepdim=True) + eps)
    k = (x @ x.t() + 1.0) / 2.0
    return k / k.sum(dim=1, keepdim=True)


class PKT(FeatureMethod):
    """Probabilistic knowledge transfer: weight·mean_ij P_t,ij·log((P_t,ij + ε)/(P_s,ij + ε)).

    Paper: Passalis & Tefas, "Learning Deep Representations with Probabilistic Knowledge Transfer", ECCV 2018.
    P is the row-normalised cosine-similarity kernel (cos + 1)/2 over the batch. Terms: "pkt", "total".
    """

    def __init__(self, weight: float = 30000.0, eps: float = 1e-7):
        super().__init__()
        self.weight = check_nonneg("weight", weight)
        self.eps = float(eps)

    def pair_terms(self, s, t):
        ps, pt = _similarity_distribution(_flat(s), self.eps), _similarity_distribution(_flat(t), self.eps)
        return {"pkt": (pt * torch.log((pt + self.eps) / (ps + self.eps))).mean()}

    def weights(self):
        return {"pkt": self.weight}
