"""The settings of a run, section by section: every field with its default, help text and validation metadata.

`config.py` holds the machinery (TOML, validation, overrides); this file is only the schema, so that adding a
setting is a one-line change here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def opt(default, help: str = "", *, choices=None, available=None, min=None, max=None, min_open=False,
        max_open=False, item=None):
    """A schema field: default value plus validation metadata (`item`: the type of a list's elements)."""
    meta = {"help": help, "choices": choices, "available": available, "min": min, "max": max,
            "min_open": min_open, "max_open": max_open, "item": item}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    source: str = opt("digits", "where the data comes from",
                      choices=("digits", "tensors", "folder", "csv", "synthetic"))
    path: str = opt("", "file or folder for the tensors/folder/csv sources")
    val_path: str = opt("", "separate validation file/folder (empty = cut val_fraction from path)")
    test_path: str = opt("", "separate test file/folder (empty = cut test_fraction from path)")
    skip_unreadable: bool = opt(False, "folder: skip unreadable images with a warning instead of stopping")
    val_fraction: float = opt(0.15, "fraction of the data held out for validation", min=0.0, max=1.0, max_open=True)
    test_fraction: float = opt(0.2, "fraction of the data held out for the final test", min=0.0, max=1.0,
                               max_open=True)
    batch_size: int = opt(64, "samples per training step", min=1)
    augment: str = opt("none", "random augmentation of training inputs (turns the teacher cache off)",
                       choices=("none", "shift", "crop", "crop_flip"))
    image_size: int = opt(0, "resize images to this size (0 = keep)", min=0)
    normalize: str = opt("auto", "input normalisation", choices=("auto", "none", "imagenet"))
    mean: list = opt([], "explicit per-channel mean (overrides normalize)", item="float")
    std: list = opt([], "explicit per-channel std (overrides normalize)", item="float")
    class_names: list = opt([], "the teacher's classes in its output order (optional)", item="str")
    label_column: str = opt("label", "CSV: name of the label column")
    synthetic_samples: int = opt(2048, "synthetic: number of samples", min=16)
    synthetic_classes: int = opt(10, "synthetic: number of classes", min=2)
    synthetic_channels: int = opt(3, "synthetic: image channels", min=1)
    synthetic_size: int = opt(32, "synthetic: image height and width", min=4)


@dataclass
class TeacherConfig:
    source: str = opt("train", "train the teacher here, or load it from a file", choices=("train", "file"))
    arch: str = opt("cnn", "teacher arch: zoo name, torchvision:NAME, timm:NAME, or file.py:factory (runs that file)")
    path: str = opt("", "teacher model file when source = \"file\"")
    width: int = opt(0, "architecture width knob (0 = the arch's default)", min=0)
    depth: int = opt(0, "architecture depth knob (0 = the arch's default)", min=0)
    epochs: int = opt(20, "training epochs when source = \"train\"", min=1)
    lr: float = opt(2e-3, "learning rate for teacher training", min=0.0, min_open=True)
    trust_pickle: bool = opt(False, "load a pickled full model from teacher.path (runs code from that file)")
    finetune_layers: int = opt(0, "fine-tune a loaded teacher: train only its last N layers (0 = off)", min=0)
    finetune_epochs: int = opt(5, "fine-tuning epochs (learning rate: teacher.lr)", min=1)
    skip_sanity_check: bool = opt(False, "go on even if the teacher scores near chance on the validation split")
    extra_paths: list = opt([], "more teacher files: their softened outputs are averaged with the first teacher's",
                            item="str")
    weights: list = opt([], "weight of each teacher in the average (empty = equal weights)", item="float")


@dataclass
class StudentConfig:
    arch: str = opt("mlp", "student arch: zoo name, \"teacher\" (its family), or file.py:factory (runs that file)")
    width: int = opt(0, "architecture width knob (0 = the arch's default)", min=0)
    depth: int = opt(0, "architecture depth knob (0 = the arch's default)", min=0)
    width_mult: float = opt(1.0, "scale the width (arch \"teacher\" = the teacher's family)", min=0.0, min_open=True)
    depth_mult: float = opt(1.0, "scale the depth (rounded to a valid depth)", min=0.0, min_open=True)


@dataclass
class DistillConfig:
    method: str = opt("kd", "distillation method", choices=None)
    temperature: float = opt(4.0, "softmax temperature T", min=0.0, min_open=True)
    alpha: float = opt(0.9, "weight of the distillation term (1 - alpha weights cross-entropy)", min=0.0, max=1.0)
    epochs: int = opt(30, "distillation epochs (the baseline gets the same budget)", min=1)
    lr: float = opt(2e-3, "learning rate", min=0.0, min_open=True)
    optimizer: str = opt("adamw", "optimizer", choices=("adamw", "adam", "sgd"))
    weight_decay: float = opt(1e-4, "weight decay", min=0.0)
    scheduler: str = opt("cosine", "learning-rate schedule", choices=("cosine", "step", "constant"))
    amp: bool = opt(True, "mixed precision where the device supports it (bf16, else fp16); losses stay fp32")
    mixup: float = opt(0.0, "mixup Beta(a, a) strength for distillation inputs (0 = off)", min=0.0)
    cache_teacher: bool = opt(True, "compute teacher outputs once when inputs are deterministic")
    compile: bool = opt(False, "torch.compile the student (slow start, faster steps on GPU)")
    log_every: int = opt(20, "read step metrics from the device every k steps", min=1)
    params: dict = opt({}, "method-specific parameters")
    feature_method: str = opt("", "feature method added to the logit method: fitnet, at, rkd, sp, pkt (\"\" = none)")
    feature_params: dict = opt({}, "parameters of feature_method, e.g. { weight = 1.0 }")
    student_layers: list = opt([], "student layers (module paths) to match, paired in order with teacher_layers; "
                                   "[] = automatic", item="str")
    teacher_layers: list = opt([], "teacher layers (module paths) to match; [] = automatic", item="str")


@dataclass
class BaselineConfig:
    enabled: bool = opt(True, "train the same student from scratch with the same budget, for comparison")


@dataclass
class CompressConfig:
    finetune_epochs: int = opt(0, "fine-tune the student on hard labels after distillation (0 = off)", min=0)
    finetune_lr: float = opt(1e-4, "learning rate of every compression fine-tune (low)", min=0.0, min_open=True)
    prune: float = opt(0.0, "global magnitude pruning: fraction of weights set to zero (0 = off)", min=0.0, max=1.0,
                       max_open=True)
    channel_prune: float = opt(0.0, "conv nets: fraction of channels removed per conv layer (0 = off)", min=0.0,
                               max=1.0, max_open=True)
    prune_finetune_epochs: int = opt(2, "fine-tune epochs after each pruning step", min=0)
    prune_finetune_lr: float = opt(1e-3, "learning rate of the fine-tune after pruning (recovery needs more than "
                                         "finetune_lr)", min=0.0, min_open=True)
    int8: str = opt("none", "int8 variant: auto = static for conv nets, dynamic (Linear layers) otherwise",
                    choices=("none", "auto", "dynamic", "static"))
    half: str = opt("none", "half-precision weights variant", choices=("none", "fp16", "bf16"))
    calibration_samples: int = opt(512, "training samples used to calibrate static int8", min=1)


@dataclass
class EvaluateConfig:
    latency_repeats: int = opt(30, "timed forward passes per latency figure (median; 0 = skip latency)", min=0)
    cpu_threads: int = opt(0, "CPU threads while timing latency (0 = PyTorch's default)", min=0)


@dataclass
class ExportConfig:
    formats: list = opt(["torchscript", "state_dict"], "export formats",
                        choices=("torchscript", "state_dict", "onnx", "safetensors"), item="str")
    quantize: str = opt("none", "export quantized/half weights", choices=("none", "int8", "fp16", "bf16"))
    model: str = opt("auto", "what to export: auto = last float compression variant, else the student",
                     choices=("auto", "student", "finetune", "prune", "channels"))


@dataclass
class RunConfig:
    seeds: list = opt([], "run the pipeline once per seed and report mean ± std, e.g. [0, 1, 2] ([] = seed)")
    sweep: dict = opt({}, "grid over numeric settings, e.g. { \"distill.temperature\" = [2, 4] }")
