"""Which settings suit "a pretrained teacher you bring → a MobileNet student" (the project template)?

The teacher is a torchvision ResNet-18 trained here on an image folder (the UCI digits shipped in resources/, written
as 32×32 RGB PNGs: weights cannot be downloaded, so "the teacher you already have" is made first), saved as a
state_dict as a user would, then loaded through `teacher.source = "file"`. The student is torchvision's
mobilenet_v3_small at random init. A sweep over the student's learning rate and the temperature, two seeds each,
prints test accuracy of the distilled student and of the same student from scratch.

    python benchmarks/experiment_pretrained_mobilenet.py [--out DIR] [--epochs 20]

Needs torchvision (the regular torch build). Takes ~15–30 min on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdstudio.core.config import Config  # noqa: E402
from kdstudio.core.config.templates import pretrained_to_mobilenet_config  # noqa: E402
from kdstudio.core.data.digits import load_digits  # noqa: E402
from kdstudio.core.pipeline import engine  # noqa: E402
from kdstudio.core.pipeline.sweep import format_table  # noqa: E402


def write_folder(root: Path) -> Path:
    """The digits as class folders of 32×32 RGB PNGs."""
    if root.exists():
        return root
    cfg = Config()
    cfg.data.normalize = "none"
    b = load_digits(cfg)
    x = torch.cat([b.x_train, b.x_val, b.x_test])
    y = torch.cat([b.y_train, b.y_val, b.y_test])
    x = (x - x.min()) / (x.max() - x.min())
    big = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    for i, (img, label) in enumerate(zip(big, y)):
        folder = root / b.class_names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        a = (img[0].clamp(0, 1).numpy() * 255).astype(np.uint8)
        Image.fromarray(a).convert("RGB").save(folder / f"{i:04d}.png")
    return root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/exp-pretrained-mobilenet")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lrs", default="1e-3,3e-3,1e-2", help="student learning rates to sweep")
    ap.add_argument("--temperatures", default="2,4")
    ap.add_argument("--seeds", default="0,1")
    args = ap.parse_args()
    out = Path(args.out)
    data = write_folder(out / "digits32")
    teacher_file = out / "resnet18_digits.pt"
    if not teacher_file.exists():
        cfg = Config()
        cfg.data.source, cfg.data.path = "folder", str(data)
        cfg.teacher.arch, cfg.teacher.epochs, cfg.teacher.lr = "torchvision:resnet18", 15, 1e-3
        cfg.student.arch, cfg.distill.epochs, cfg.baseline.enabled = "mlp", 1, False
        cfg.export.formats, cfg.evaluate.latency_repeats = [], 0
        s = engine.run(cfg, out / "teacher-run")
        print(f"teacher trained here: {s['teacher']['accuracy']:.4f} test accuracy", flush=True)
        state = torch.load(out / "teacher-run" / "checkpoints" / "teacher.pt", weights_only=False)["model"]
        torch.save(state, teacher_file)
    cfg = pretrained_to_mobilenet_config()
    cfg.data.path, cfg.teacher.path, cfg.teacher.pretrained = str(data), str(teacher_file), ""
    cfg.distill.epochs = args.epochs
    cfg.export.formats, cfg.evaluate.latency_repeats = [], 0
    cfg.run.sweep = {"distill.lr": [float(v) for v in args.lrs.split(",")],
                     "distill.temperature": [float(v) for v in args.temperatures.split(",")]}
    cfg.run.seeds = [int(v) for v in args.seeds.split(",")]
    result = engine.run(cfg, out / "sweep")
    print(format_table(result))


if __name__ == "__main__":
    main()
