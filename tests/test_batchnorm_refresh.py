"""Batch-norm statistics a short stage leaves unfinished (momentum 0.01, as torchvision's MobileNetV3 has) are
recomputed before validation; models whose statistics are finished (momentum 0.1 after enough steps) are left alone."""

import torch
from torch import nn

from kdstudio.core import events, trust
from kdstudio.core.pipeline import engine
from kdstudio.core.train import batchnorm
from tests.helpers import tiny_config


def test_stale_share_and_steps_needed():
    slow = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, momentum=0.01))
    fast = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    assert abs(batchnorm.stale_share(slow, 114) - 0.99 ** 114) < 1e-12 and batchnorm.steps_needed(slow) == 299
    assert batchnorm.stale_share(fast, 10) == 0.0 and batchnorm.steps_needed(fast) == 0  # the default: untouched
    assert batchnorm.stale_share(nn.Linear(3, 2), 1) == 0.0


def test_refresh_gives_the_training_inputs_statistics_and_keeps_the_rng():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, momentum=0.01), nn.Dropout(0.5))
    x = torch.randn(200, 1, 8, 8) * 3 + 5
    model.train()
    for i in range(0, 200, 20):
        model(x[i:i + 20])
    before = torch.get_rng_state()
    said = batchnorm.refresh_if_stale(model, 10, x, 20, torch.device("cpu"))
    assert "recomputed over 200 training samples" in said and torch.equal(torch.get_rng_state(), before)
    feats = model[0](x).detach()
    assert torch.allclose(model[1].running_mean, feats.mean(dim=(0, 2, 3)), atol=1e-4)
    assert model[1].momentum == 0.01 and model.training  # restored
    assert batchnorm.refresh_if_stale(model, 10_000, x, 20, torch.device("cpu")) == ""


FACTORY = """
import torch.nn as nn

def slow_bn(num_classes, input_shape):
    c, h, w = input_shape
    return nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.BatchNorm2d(8, momentum=0.01), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * h * w, num_classes))
"""


def test_a_short_run_of_a_slow_batch_norm_student_evaluates_finished_statistics(tmp_path):
    f = tmp_path / "slow.py"
    f.write_text(FACTORY)
    trust.grant(f)
    logs = []
    cfg = tiny_config(**{"student.arch": f"{f}:slow_bn", "distill.epochs": 2, "export.formats": [],
                         "evaluate.latency_repeats": 0, "baseline.enabled": False})
    s = engine.run(cfg, tmp_path / "run", on_event=lambda e: logs.append((e.stage, e.data.get("message", "")))
                   if e.kind == events.LOG else None)
    said = {stage: m for stage, m in logs if m.startswith("Batch-norm statistics are recomputed")}
    assert "needs 299 steps" in said["distill"]  # once in the stage, though both of its epochs refreshed
    assert list(said) == ["distill"]  # the teacher's batch norms have PyTorch's default momentum: left as they are
    state = torch.load(tmp_path / "run" / "checkpoints" / "distill.pt", weights_only=False)["model"]
    assert float(state["1.running_var"].sub(1).abs().max()) > 0.05  # not the initial statistics
    assert s["student"]["accuracy"] > 0.3
