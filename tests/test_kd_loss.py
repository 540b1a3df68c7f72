"""Hinton KD against a hand computation on fixed tensors."""

import math

import pytest
import torch

from kdstudio.core import losses


def _softmax(row, T):
    e = [math.exp(v / T) for v in row]
    return [v / sum(e) for v in e]


def test_kd_matches_hand_computation():
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = torch.tensor([[2.0, 1.0, 0.0], [1.0, 0.0, 2.0]])
    y = torch.tensor([1, 2])
    T, alpha = 2.0, 0.7
    kl = 0.0
    for sr, tr in zip(s.tolist(), t.tolist()):
        p, q = _softmax(tr, T), _softmax(sr, T)
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    kl = kl / 2 * T * T
    ce = 0.0
    for sr, yi in zip(s.tolist(), y.tolist()):
        ce += -math.log(_softmax(sr, 1.0)[yi])
    ce /= 2
    terms = losses.create("kd", temperature=T, alpha=alpha)(s, t, y)
    assert terms["kd"].item() == pytest.approx(kl, rel=1e-5)
    assert terms["ce"].item() == pytest.approx(ce, rel=1e-5)
    assert terms["total"].item() == pytest.approx(alpha * kl + (1 - alpha) * ce, rel=1e-5)


def test_kd_is_zero_when_student_equals_teacher():
    x = torch.randn(4, 5)
    terms = losses.create("kd", temperature=3.0, alpha=1.0)(x, x.clone(), torch.zeros(4, dtype=torch.long))
    assert terms["kd"].item() == pytest.approx(0.0, abs=1e-6)
    assert terms["total"].item() == pytest.approx(0.0, abs=1e-6)
