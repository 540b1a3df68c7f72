"""The project template "Pretrained teacher → MobileNet (your image folder)" runs end to end on a small folder with
a torchvision ResNet-18 state_dict the user brings: the teacher's own preprocessing (its weights' transforms),
distillation into mobilenet_v3_small, the baseline, evaluation and the template's exports with parity."""

import numpy as np
import pytest
import torch
from PIL import Image

from kdstudio.core.config.templates import pretrained_to_mobilenet_config
from kdstudio.core.pipeline import engine

tvm = pytest.importorskip("torchvision.models", exc_type=ImportError)


def test_the_pretrained_to_mobilenet_template_runs_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    for c, name in enumerate(("daisy", "rose", "tulip")):
        (tmp_path / "flowers" / name).mkdir(parents=True)
        for i in range(10):
            a = np.clip(rng.normal(60 + 70 * c, 40, (90, 120, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(tmp_path / "flowers" / name / f"{i}.jpg")
    torch.manual_seed(0)
    teacher = tvm.resnet18(num_classes=3)  # as fine-tuned by the user on their 3 classes
    torch.save(teacher.state_dict(), tmp_path / "resnet18_flowers.pt")
    cfg = pretrained_to_mobilenet_config()
    cfg.data.path, cfg.teacher.path = str(tmp_path / "flowers"), str(tmp_path / "resnet18_flowers.pt")
    cfg.teacher.skip_sanity_check = True  # random weights: near chance, which the check would stop
    cfg.data.batch_size, cfg.distill.epochs, cfg.evaluate.latency_repeats = 8, 1, 0
    s = engine.run(cfg, tmp_path / "run")
    assert s["status"] == "completed"
    assert s["data"]["preprocessing"]["source"] == "torchvision weights ResNet18_Weights.IMAGENET1K_V1"
    assert s["data"]["inputs"].startswith("inputs: 224×224, bilinear, crop 0.875 of 256, ImageNet mean/std")
    assert s["teacher"]["params"] == sum(p.numel() for p in teacher.parameters())
    assert s["student"]["params"] == sum(p.numel() for p in tvm.mobilenet_v3_small(num_classes=3).parameters())
    assert {e["format"] for e in s["exports"]} == {"onnx", "torchscript", "state_dict"}
    assert all(e["parity"]["ok"] for e in s["exports"]), s["exports"]
