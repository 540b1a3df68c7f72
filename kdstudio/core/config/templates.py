"""Ready-made configs: the digits demo and the commented starter file of `kdstudio init`."""

from __future__ import annotations

from . import Config
from .toml_edit import dumps


def demo_config() -> Config:
    """The built-in digits demo: a CNN teacher (94k parameters) distilled into an MLP 10.5x smaller.

    Chosen by experiment (see README, "The demo"): without augmentation the teacher-output cache is on, and at
    lr 1e-2 for 60 epochs the distilled MLP beats the same MLP trained from scratch on average over seeds.
    """
    cfg = Config()
    cfg.seed = 0
    cfg.data.source = "digits"
    cfg.data.batch_size = 64
    cfg.data.augment = "none"
    cfg.teacher.arch, cfg.teacher.width, cfg.teacher.depth = "cnn", 32, 3
    cfg.teacher.epochs, cfg.teacher.lr = 15, 3e-3
    cfg.student.arch, cfg.student.width, cfg.student.depth = "mlp", 64, 2
    d = cfg.distill
    d.method, d.temperature, d.alpha = "kd", 4.0, 0.9
    d.epochs, d.lr, d.optimizer, d.weight_decay, d.scheduler = 60, 1e-2, "adamw", 1e-4, "cosine"
    cfg.baseline.enabled = True
    cfg.export.formats = ["torchscript", "state_dict"]
    return cfg


def pretrained_to_mobilenet_config() -> Config:
    """"Pretrained teacher → MobileNet (your image folder)": a torchvision ResNet-18 the user brings (teacher.path,
    teacher.pretrained naming the weights it came from, so its preprocessing applies) distilled into torchvision's
    mobilenet_v3_small at random init, on the user's image folder (data.path).

    Settings from benchmarks/experiment_pretrained_mobilenet.py (README, "Distil your own torchvision / timm /
    Hugging Face model"): kd at T = 4, AdamW; of lr 1e-3, 3e-3 and 1e-2 (8 epochs, digits at 32 px), 3e-3 gave the
    best student (98.6 %, baseline 97.2 %); without augmentation the teacher runs once per image (its cache).
    """
    cfg = Config()
    cfg.seed = 0
    d = cfg.data
    d.source, d.path, d.mode, d.preprocess = "folder", "", "auto", "auto"
    d.batch_size, d.augment = 64, "none"  # deterministic inputs: the teacher runs once per image (its cache)
    t = cfg.teacher
    t.source, t.arch, t.path, t.pretrained = "file", "torchvision:resnet18", "", "IMAGENET1K_V1"
    cfg.student.arch = "torchvision:mobilenet_v3_small"
    k = cfg.distill
    k.method, k.temperature, k.alpha = "kd", 4.0, 0.9
    k.epochs, k.lr, k.optimizer, k.weight_decay, k.scheduler = 30, 3e-3, "adamw", 1e-4, "cosine"
    cfg.baseline.enabled = True
    cfg.export.formats = ["onnx", "torchscript", "state_dict"]
    return cfg


STARTER_HEADER = """\
# KD Studio run configuration (TOML). Every key has a default; delete what you do not need.
# Run it with:  kdstudio run {path}      Override one value:  --set distill.temperature=2
# Unknown keys are an error that names the nearest valid key.
"""


def starter_config_text(path: str = "kdstudio.toml") -> str:
    """The demo config with every key and a comment saying what it does (a tomlkit document, as edits keep it)."""
    return dumps(demo_config(), comments=True, header=STARTER_HEADER.format(path=path))
