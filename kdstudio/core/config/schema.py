"""The settings of a run, section by section: every field with its default, help text and validation metadata.

`config.py` holds the machinery (TOML, validation, overrides); this file is only the schema, so that adding a
setting is a one-line change here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import Registry

GRAD_CLIP_DEFAULT = 100.0  # see README, "Training extras": far above healthy gradient norms (the demo peaks at 12)


def opt(default, help: str = "", *, choices=None, available=None, min=None, max=None, min_open=False,
        max_open=False, item=None):
    """A schema field: default value plus validation metadata (`item`: the type of a list's elements)."""
    meta = {"help": help, "choices": choices, "available": available, "min": min, "max": max,
            "min_open": min_open, "max_open": max_open, "item": item}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


# The data sources: name -> loader(cfg) -> DataBundle, imported on first use so that this schema stays torch-free.
# `needs_path`: the source reads data.path (and data.val_path / data.test_path). A new source is one line here.
SOURCES = Registry("data source", key="data.source")
SOURCES.register_lazy("digits", "kdstudio.core.data.digits:load_digits", needs_path=False)
SOURCES.register_lazy("tensors", "kdstudio.core.data.tensors:load_tensors", needs_path=True)
SOURCES.register_lazy("folder", "kdstudio.core.data.folder_stream:load_folder", needs_path=True)
SOURCES.register_lazy("csv", "kdstudio.core.data.csv:load_csv", needs_path=True)
SOURCES.register_lazy("synthetic", "kdstudio.core.data.synthetic:load_synthetic", needs_path=False)


@dataclass
class DataConfig:
    source: str = opt("digits", "digits = the built-in 8×8 handwritten digits, synthetic = generated images for a "
                                "quick try; tensors (.npz/.npy/.pt), folder (one sub-folder per class) and csv read "
                                "data.path", choices=tuple(SOURCES))
    path: str = opt("", "file or folder for the tensors/folder/csv sources")
    val_path: str = opt("", "separate validation file/folder (empty = cut val_fraction from path)")
    test_path: str = opt("", "separate test file/folder (empty = cut test_fraction from path)")
    skip_unreadable: bool = opt(False, "folder: skip unreadable images with a warning instead of stopping")
    val_fraction: float = opt(0.15, "share of each class held out (by seed) to follow accuracy during training and "
                                    "pick the best sweep point; 0.1–0.2 is usual; unused when val_path is set",
                              min=0.0, max=1.0, max_open=True)
    test_fraction: float = opt(0.2, "share of each class kept out of all training here for the final comparison of "
                                    "teacher, student and baseline; 0.2 is usual; unused when test_path is set",
                               min=0.0, max=1.0, max_open=True)
    batch_size: int = opt(64, "samples per training step in every stage; 64–256 is usual; lower it when the device "
                              "runs out of memory; per process in a distributed run (--nproc N: N × batch_size "
                              "samples a step)", min=1)
    augment: str = opt("none", "random augmentation of training inputs (turns the teacher cache off): shift, crop, "
                               "crop_flip run on the device; rrc_flip (random-resized crop + flip), randaugment and "
                               "trivialaugment (these two need torchvision) run per sample in the workers of streamed "
                               "data", choices=("none", "shift", "crop", "crop_flip", "rrc_flip", "randaugment",
                                                "trivialaugment"))
    image_size: int = opt(0, "resize images to this size (0 = keep; at most 4096); with data.resize, the centre crop's "
                             "size", min=0, max=4096)
    resize: int = opt(0, "image folders: resize each image's shorter side to this, then crop the centre "
                         "image_size×image_size (torchvision's Resize(256) + CenterCrop(224)); 0 = resize straight to "
                         "image_size", min=0, max=8192)
    interpolation: str = opt("bilinear", "image folders: how images are resized", choices=(
        "nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"))
    preprocess: str = opt("auto", "image folders: auto = the teacher's own preprocessing when it names one (a Hugging "
                                  "Face folder's preprocessor_config.json, timm's pretrained_cfg, torchvision weights "
                                  "in teacher.pretrained), else the settings here; teacher = the teacher's or stop; "
                                  "own = the settings here", choices=("auto", "teacher", "own"))
    mode: str = opt("auto", "where the data lives while training: resident = decoded once, on the device (fastest); "
                            "streamed = decoded per batch by worker processes (any size; image folders, "
                            ".npy/.npz tensor files, and CSV converted once to a cache; other sources are read "
                            "whole); auto = resident when the decoded data fits data.memory_budget_gb",
                    choices=("auto", "resident", "streamed"))
    memory_budget_gb: float = opt(0.0, "auto mode: the most decoded data kept resident (0 = an eighth of the free "
                                       "RAM, as reading it whole peaks at ~4× its size; on a GPU at most a quarter of "
                                       "its free memory)", min=0.0)
    workers: int = opt(-1, "streamed: decoding worker processes (-1 = auto: half the cores, at least 1, at most 8; "
                           "0 = decode in the training process)", min=-1)
    prefetch: int = opt(2, "streamed: batches each worker decodes ahead", min=1)
    normalize: str = opt("auto", "scales each input channel (each column of a table): auto = by the training split's "
                                 "mean and std, imagenet = by ImageNet's, for teachers pretrained on it, none = as "
                                 "read", choices=("auto", "none", "imagenet"))
    mean: list = opt([], "per-channel values subtracted from the inputs, as the teacher was trained with, "
                         "e.g. [0.5, 0.5, 0.5]; overrides normalize", item="float")
    std: list = opt([], "per-channel values the inputs are then divided by, one per mean value (empty = 1); "
                        "overrides normalize", item="float")
    class_names: list = opt([], "the teacher's classes in its output order (optional)", item="str")
    label_column: str = opt("label", "CSV: header of the column that holds each row's class (whole numbers or names); "
                                     "every other column must be a numeric feature")
    synthetic_samples: int = opt(2048, "synthetic: images generated in all, before the validation and test splits are "
                                       "cut from them", min=16)
    synthetic_classes: int = opt(10, "synthetic: classes, each a smooth random pattern under noise", min=2)
    synthetic_channels: int = opt(1, "synthetic: channels per image (3 like colour photos, 1 like grey scans)", min=1)
    synthetic_noise: float = opt(0.8, "synthetic: standard deviation of the noise over each class's pattern (the "
                                      "patterns' own is about 1); more noise makes the classes harder to tell apart",
                                 min=0.0)
    synthetic_shift: int = opt(1, "synthetic: each image's pattern moves by up to this many pixels (wrapping "
                                  "round), as objects move in photos: convolutional nets cope, an MLP must learn "
                                  "every position", min=0)
    synthetic_size: int = opt(16, "synthetic: height and width in pixels; larger images make every step slower", min=4)
    synthetic_label_noise: float = opt(0.3, "synthetic: share of the training and validation labels moved to a "
                                            "random other class, as annotators err (the test split's labels stay "
                                            "true)", min=0.0, max=0.9)


@dataclass
class TeacherConfig:
    source: str = opt("train", "train the teacher here, or load it from a file", choices=("train", "file"))
    arch: str = opt("cnn", "teacher arch: zoo name, torchvision:NAME, timm:NAME, hf (a Hugging Face folder in "
                           "teacher.path), or file.py:factory (runs that file)")
    path: str = opt("", "teacher model file (or Hugging Face model folder) when source = \"file\"")
    pretrained: str = opt("", "what the teacher file was trained from, for its preprocessing and class names (nothing "
                              "is downloaded): torchvision weights such as ResNet18_Weights.IMAGENET1K_V1, or a timm "
                              "tag such as a1_in1k (timm's default tag when empty)")
    width: int = opt(0, "architecture width knob (0 = the arch's default)", min=0)
    depth: int = opt(0, "architecture depth knob (0 = the arch's default)", min=0)
    epochs: int = opt(20, "training epochs when source = \"train\"", min=1)
    lr: float = opt(2e-3, "step size when the teacher is trained or fine-tuned here (optimizer and schedule from "
                          "[distill]); 1e-3–3e-3 suits adamw; lower it if its loss diverges", min=0.0, min_open=True)
    reuse: str = opt("auto", "auto = a teacher trained before with the same settings, data and seed is reused instead "
                             "of trained again; never = always train it here; or the id of a stored teacher (listed "
                             "on the Teacher page) to use that one")
    trust_pickle: bool = opt(False, "load a pickled full model from teacher.path (runs code from that file)")
    finetune_layers: int = opt(0, "fine-tune a loaded teacher: train only its last N layers (0 = off)", min=0)
    finetune_epochs: int = opt(5, "epochs of training a loaded teacher's last finetune_layers layers on this data, at "
                                  "teacher.lr (only when finetune_layers > 0)", min=1)
    skip_sanity_check: bool = opt(False, "go on even if the teacher scores near chance on the validation split")
    extra_paths: list = opt([], "more teacher files: their softened outputs are averaged with the first teacher's",
                            item="str")
    weights: list = opt([], "weight of each teacher in the average (empty = equal weights)", item="float")


@dataclass
class StudentConfig:
    arch: str = opt("mlp", "student arch: zoo name, \"teacher\" (its family), or file.py:factory (runs that file)")
    width: int = opt(0, "architecture width knob (0 = the arch's default)", min=0)
    depth: int = opt(0, "architecture depth knob (0 = the arch's default)", min=0)
    width_mult: float = opt(1.0, "multiplies the width (student.width, else the arch's default) of a built-in arch, "
                                 "e.g. 0.5 with arch \"teacher\" for the teacher's family at half width (also "
                                 "torchvision's mobilenets and timm's ResNets and ConvNeXts)",
                            min=0.0, min_open=True)
    depth_mult: float = opt(1.0, "multiplies the depth the same way, rounded to a depth the arch can build (e.g. "
                                 "ResNet's block counts)", min=0.0, min_open=True)


@dataclass
class DistillConfig:
    method: str = opt("kd", "how the student learns from the teacher: kd (Hinton's softened outputs) is the usual "
                            "start; soft_mse, logit_mse, dkd and dist are other output losses, fitnet, at, rkd, sp "
                            "and pkt match features", choices=None)
    temperature: float = opt(4.0, "divides teacher and student logits before the softmax, so a higher T shows more of "
                                  "how the teacher ranks the wrong classes; 2–4 is usual; try lower if a much smaller "
                                  "student does worse than its baseline; left out, the method's default applies (4; "
                                  "soft_mse 1)", min=0.0, min_open=True)
    alpha: float = opt(0.9, "what the method weighs with it: kd, soft_mse, logit_mse = the distillation term (1 − "
                            "alpha weights cross-entropy, between 0 and 1); dkd = the TCKD term (cross-entropy keeps "
                            "weight 1); left out, the method's default applies (0.9; dkd 1.0)", min=0.0)
    epochs: int = opt(30, "distillation epochs (the baseline gets the same budget)", min=1)
    lr: float = opt(2e-3, "step size of the optimizer for the student and the baseline; 1e-3–1e-2 suits adamw (the "
                          "demo uses 1e-2), 0.05–0.1 sgd; lower it if the loss diverges", min=0.0, min_open=True)
    optimizer: str = opt("adamw", "the optimizer of every training stage: adamw (decoupled weight decay) is a safe "
                                  "default, adam adds the decay to the gradient, sgd (Nesterov momentum 0.9) wants a "
                                  "50–100× higher learning rate", choices=("adamw", "adam", "sgd"))
    weight_decay: float = opt(1e-4, "pulls the weights towards zero at every step of every stage; 1e-4–5e-4 suits sgd "
                                    "and adam, adamw often uses 0.01–0.05; raise it if the student overfits", min=0.0)
    scheduler: str = opt("cosine", "the learning rate over each stage's steps: cosine decays it to zero (a good "
                                   "default), step multiplies it by 0.1 at 50% and 75%, constant keeps it",
                         choices=("cosine", "step", "constant"))
    amp: bool = opt(True, "mixed precision where the device supports it (bf16, else fp16); losses stay fp32")
    mixup: float = opt(0.0, "mixup Beta(a, a) strength for distillation inputs (0 = off)", min=0.0)
    cache_teacher: bool = opt(True, "compute teacher outputs once when inputs are deterministic")
    cache_dtype: str = opt("fp16", "streamed data: precision of the teacher-output cache on disk (fp16 halves it)",
                           choices=("fp16", "fp32"))
    keep_cache: bool = opt(False, "streamed data: keep the teacher-output cache (run folder cache/) after distill "
                                  "finishes, instead of deleting it")
    compile: bool = opt(False, "torch.compile the student (slow start, faster steps on GPU)")
    log_every: int = opt(20, "read step metrics from the device every k steps", min=1)
    grad_clip: float = opt(GRAD_CLIP_DEFAULT, "clips the gradient norm of every training step to this value (0 = off); "
                                           "the default only catches blow-ups and leaves healthy steps alone",
                           min=0.0)
    ema: float = opt(0.0, "keep an exponential moving average of the student's weights with this decay, e.g. 0.999, "
                          "and use it as the trained student (0 = off); smooths the last epochs' noise", min=0.0,
                     max=1.0, max_open=True)
    params: dict = opt({}, "the method's own parameters beyond temperature and alpha, e.g. { beta = 8.0 } for dkd; "
                           "empty = the method's defaults")
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
    finetune_lr: float = opt(1e-4, "learning rate of the hard-label fine-tune after distillation; keep it well below "
                                   "distill.lr so the student keeps what it learnt from the teacher",
                             min=0.0, min_open=True)
    prune: float = opt(0.0, "global magnitude pruning: fraction of weights set to zero (0 = off)", min=0.0, max=1.0,
                       max_open=True)
    channel_prune: float = opt(0.0, "conv nets: fraction of channels removed per conv layer (0 = off)", min=0.0,
                               max=1.0, max_open=True)
    prune_finetune_epochs: int = opt(2, "hard-label epochs after magnitude and after channel pruning, to win back "
                                        "accuracy (0 = keep the pruned weights as they are)", min=0)
    prune_finetune_lr: float = opt(1e-3, "learning rate of the fine-tune after pruning (recovery needs more than "
                                         "finetune_lr)", min=0.0, min_open=True)
    int8: str = opt("none", "int8 variant: auto = static for conv nets, dynamic (Linear layers) otherwise",
                    choices=("none", "auto", "dynamic", "static"))
    half: str = opt("none", "also evaluate a copy with fp16 or bf16 weights (half the size); skipped with a warning "
                            "where the device cannot run it", choices=("none", "fp16", "bf16"))
    calibration_samples: int = opt(512, "training samples used to calibrate static int8", min=1)


@dataclass
class EvaluateConfig:
    latency_repeats: int = opt(30, "timed forward passes per latency figure (median; 0 = skip latency)", min=0)
    cpu_threads: int = opt(0, "CPU threads while timing latency (0 = PyTorch's default)", min=0)
    model: str = opt("last", "which weights of the student and the baseline are evaluated and exported: last = the "
                             "final epoch's, best = the epoch with the best validation accuracy (both get the same "
                             "rule, so the comparison stays fair)", choices=("last", "best"))


@dataclass
class ExportConfig:
    formats: list = opt(["torchscript", "state_dict"], "files every run writes, each reloaded and checked: "
                                                       "torchscript loads without your model code, state_dict and "
                                                       "safetensors hold the weights only, onnx runs in ONNX Runtime, "
                                                       "torch_export is the .pt2 program PyTorch deploys from, "
                                                       "openvino runs on Intel CPUs, executorch (.pte) on phones "
                                                       "(onnx, openvino and executorch need their pip packages)",
                        choices=("torchscript", "state_dict", "onnx", "safetensors", "torch_export", "openvino",
                                 "executorch"), item="str")
    quantize: str = opt("none", "weights of the exported files: none = float32; int8 (static for conv nets, else "
                                "dynamic) or fp16/bf16 make smaller files (compress.int8 and compress.half show what "
                                "they cost in accuracy)", choices=("none", "int8", "fp16", "bf16"))
    model: str = opt("auto", "what to export: auto = last float compression variant, else the student",
                     choices=("auto", "student", "finetune", "prune", "channels"))


@dataclass
class TrackingConfig:
    tensorboard: bool = opt(False, "write a TensorBoard logdir into the run folder (tensorboard/): every loss term, "
                                   "accuracies, lr, and the run's settings with its final metrics in the HParams "
                                   "tab; `tensorboard --logdir PROJECT/runs` shows every run (pip install "
                                   "tensorboard)")
    mlflow: str = opt("", "MLflow tracking URI that receives the settings, the metrics of every step and epoch, and "
                          "the exported student with its model card, e.g. \"file:./mlruns\" (relative to where "
                          "kdstudio runs) or \"http://mlflow.example:5000\"; \"\" = off (pip install mlflow-skinny)")
    experiment: str = opt("kdstudio", "the MLflow experiment the runs are logged under (created when missing)")


@dataclass
class RunConfig:
    seeds: list = opt([], "run the pipeline once per seed and report mean ± std, e.g. [0, 1, 2] ([] = seed)")
    sweep: dict = opt({}, "grid over numeric settings, e.g. { \"distill.temperature\" = [2, 4] }")
    threads: int = opt(0, "CPU threads PyTorch computes with (0 = auto: 1 on a machine of 1–2 cores, else one fewer "
                          "than the cores, less the decoding workers of a streamed run)", min=0)
    trust_files: list = opt([], "command line only: TorchScript, pickle or file.py files this config may load, "
                                "which runs their code (like --trust FILE); the app asks for each file instead",
                            item="str")
