"""Shared pieces of the loss classes: parameter checks and the two method kinds."""

from __future__ import annotations

from torch import nn

# The value checks live with the torch-free method catalogue, so validation and the classes refuse the same values.
from ..config.methods import check_nonneg, check_temperature, check_unit  # noqa: F401 - used by the classes


class LogitMethod(nn.Module):
    """A method on logits: `forward(student_logits, teacher_logits, targets, *, epoch=0) -> dict` with "total"."""

    kind = "logit"
    min_batch = 1  # relations across the batch need more than one sample


class FeatureMethod(nn.Module):
    """A method on intermediate features: `forward(student_feats, teacher_feats) -> dict` with "total".

    Either argument may be one tensor or a list of tensors (one per layer pair; the pair losses are summed).
    Shapes must already match where the method compares features element-wise (`features.py` pools and adapts).
    """

    kind = "feature"
    min_batch = 1
    needs_4d = False        # attention maps need (B, C, H, W)
    elementwise = False     # compares features element by element: needs an adapter + spatial match
    spatial = False         # compares spatial maps: needs the same H, W (pooled), channels may differ

    def pair_terms(self, s, t) -> dict:  # pragma: no cover - every subclass implements it
        """Raw (unweighted) terms for one layer pair."""
        raise NotImplementedError

    def weights(self) -> dict:  # pragma: no cover
        """Weight of each raw term in "total"."""
        raise NotImplementedError

    def forward(self, student_feats, teacher_feats) -> dict:
        """Sum each term over the layer pairs; "total" is the weighted sum of the terms."""
        if not isinstance(student_feats, (list, tuple)):
            student_feats, teacher_feats = [student_feats], [teacher_feats]
        terms: dict = {}
        for s, t in zip(student_feats, teacher_feats):
            for k, v in self.pair_terms(s.float(), t.float().detach()).items():
                terms[k] = terms[k] + v if k in terms else v
        w = self.weights()
        terms["total"] = sum(w[k] * terms[k] for k in w)
        return terms
