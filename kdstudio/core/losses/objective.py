"""The run's objective: one logit method (or plain cross-entropy) plus an optional feature method."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class Objective(nn.Module):
    """Sum of a logit method's terms and a feature method's weighted terms; every term is reported.

    `terms = objective(student_logits, teacher_logits, targets, epoch=epoch)` after the student's and (when
    `uses_features`) the teacher's forward passes of the same batch; `terms["total"]` is what to minimise.
    Parameters are the feature adapters: train them with the student. `remove()` unhooks the models.
    """

    def __init__(self, logit: nn.Module | None, feature: nn.Module | None = None, matcher: nn.Module | None = None):
        super().__init__()
        self.logit = logit
        self.feature = feature
        self.matcher = matcher
        self.uses_features = matcher is not None
        self.min_batch = max(getattr(logit, "min_batch", 1), getattr(feature, "min_batch", 1))

    def forward(self, student_logits, teacher_logits, targets, *, epoch: int = 0) -> dict:
        """Named terms (raw, fp32) and "total" for one batch."""
        if self.logit is not None:
            terms = dict(self.logit(student_logits, teacher_logits, targets, epoch=epoch))
        else:
            ce = F.cross_entropy(student_logits.float(), targets)
            terms = {"ce": ce, "total": ce}
        if self.matcher is not None:
            s_feats, t_feats = self.matcher()
            f_terms = self.feature(s_feats, t_feats)
            total = terms.pop("total") + f_terms.pop("total")
            terms.update(f_terms)
            terms["total"] = total
        return terms

    def clear(self) -> None:
        """Drop captured features without computing a loss (e.g. after a skipped step)."""
        if self.matcher is not None:
            self.matcher.clear()

    def remove(self) -> None:
        """Unregister the feature hooks from both models (call before export); idempotent."""
        if self.matcher is not None:
            self.matcher.remove()

    def describe(self) -> list[str]:
        """Human-readable lines: the methods and each matched layer pair."""
        lines = [f"logit method: {getattr(self.logit, 'registry_name', 'cross-entropy only')}"]
        if self.feature is not None:
            lines.append(f"feature method: {getattr(self.feature, 'registry_name', type(self.feature).__name__)}")
            lines += self.matcher.describe()
        return lines
