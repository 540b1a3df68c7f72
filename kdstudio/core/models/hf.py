"""Teachers that are Hugging Face image classifiers in a local folder (config.json + weights, as save_pretrained
writes them), loaded with transformers' AutoModelForImageClassification and nothing downloaded.

`HFClassifier` makes the library model a plain logits module whose module names, parameters and state_dict keys
are the library's own (`resnet.encoder.stages.1`), so feature hooks, fine-tuning and head replacement address the
real layers. Code shipped in the folder (config.json's `auto_map`, transformers' trust_remote_code) runs only after
each of its .py files is trusted (core/trust.py, kind "remote_code"). The folder readers (`read_config`,
`class_names`, `is_hf_folder`) use plain json: no transformers import.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

from torch import nn

from .. import trust
from ..data.preprocess import hf_class_names as class_names  # noqa: F401 - public here too
from ..data.preprocess import is_hf_folder, read_hf_config as read_config  # noqa: F401
from ..errors import KDError


WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
OTHER_WEIGHTS = ("tf_model.h5", "flax_model.msgpack", "model.ckpt.index")  # TensorFlow / Flax saves
AUTO_CLASS = "AutoModelForImageClassification"
INSTALL = 'pip install "kdstudio[hf]"'


def num_labels(config: dict) -> int:
    """How many classes the model's head gives, as transformers reads config.json (id2label, else num_labels)."""
    labels = config.get("id2label")
    if isinstance(labels, dict) and labels:
        return len(labels)
    n = config.get("num_labels")
    return n if isinstance(n, int) and n > 0 else 2  # PretrainedConfig's default


def arch_name(config: dict) -> str:
    """The model's class name from config.json (architectures[0]), else its model_type."""
    archs = config.get("architectures")
    if isinstance(archs, list) and archs and isinstance(archs[0], str):
        return archs[0]
    return str(config.get("model_type") or "unknown")


class HFClassifier(nn.Module):
    """A transformers image classifier whose forward(x) returns its logits. It shares the library model's tables
    of submodules, parameters and buffers, so named_modules(), parameters() and state_dict() are the library
    model's own (no wrapper prefix), and .to(), deepcopy and head replacement act on the library model too."""

    def __init__(self, hf_model: nn.Module, folder: Path):
        super().__init__()
        # Shared tables, not a submodule: a submodule would put a prefix before every layer path.
        self.__dict__.update(_modules=hf_model._modules, _parameters=hf_model._parameters,
                             _buffers=hf_model._buffers,
                             _non_persistent_buffers_set=hf_model._non_persistent_buffers_set)
        object.__setattr__(self, "hf_model", hf_model)
        object.__setattr__(self, "folder", Path(folder))

    @property
    def config(self):
        """The library model's PretrainedConfig."""
        return self.hf_model.config

    def train(self, mode: bool = True):
        """Train/eval mode for every layer and the library model itself (some models read its flag)."""
        super().train(mode)
        self.hf_model.training = mode
        return self

    def forward(self, x):
        self.hf_model.training = self.training  # code that sets .training on modules() directly skips the root
        return self.hf_model(pixel_values=x).logits


@contextlib.contextmanager
def _quiet(transformers):
    """No progress bars or load warnings from transformers while loading (the engine reports what matters)."""
    log = transformers.utils.logging
    verbosity, bars = log.get_verbosity(), log.is_progress_bar_enabled()
    log.set_verbosity_error()
    log.disable_progress_bar()
    try:
        yield
    finally:
        log.set_verbosity(verbosity)
        if bars:
            log.enable_progress_bar()


def _remote_code_files(folder: Path, config: dict) -> list[Path]:
    """The folder's .py files that loading the model would import (auto_map entries and what they import)."""
    auto_map = config.get("auto_map")
    if not isinstance(auto_map, dict):
        return []
    refs = [auto_map.get(k) for k in ("AutoConfig", AUTO_CLASS)]
    refs = [r for r in refs if isinstance(r, str) and r]
    files: list[Path] = []
    for ref in refs:
        if "--" in ref:
            raise KDError(f"The config.json in teacher folder '{folder}' names code from another repository "
                          f"('{ref}'), which would be downloaded; KD Studio loads only what is in the folder.")
        module = folder / (ref.rpartition(".")[0].replace(".", "/") + ".py")
        if not module.is_file():
            raise KDError(f"The config.json in teacher folder '{folder}' names code in '{module.name}', which is "
                          "not in the folder; copy the model's .py files beside config.json.")
        files.append(module)
    from transformers.dynamic_module_utils import get_relative_import_files  # reads the files, runs nothing
    for module in list(files):
        try:
            files += [Path(f) for f in get_relative_import_files(module)]
        except OSError as e:
            raise KDError(f"Code of the model in teacher folder '{folder}' imports a file that cannot be read "
                          f"({e.strerror or e}: {getattr(e, 'filename', '')}); copy every .py file of the model "
                          "beside config.json.") from None
    return list(dict.fromkeys(files))


def _image_model_types() -> set[str]:
    """model_type names that transformers' own AutoModelForImageClassification knows."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES
    return set(MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES)


def _few(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:3]) + (f" (and {len(keys) - 3} more)" if len(keys) > 3 else "")


def load_folder(path: str | Path, num_classes: int, *, finetune: bool = False,
                warn: Callable[[str], None] | None = None) -> tuple[HFClassifier, dict]:
    """The Hugging Face image classifier in the folder `path` on the CPU, as an HFClassifier, and what teacher_io
    records about it (format, path, arch, model_type, class_names). Every problem is a KDError naming the folder;
    code in the folder runs only once trusted."""
    warn = warn or (lambda msg: None)
    folder = Path(path).expanduser()
    config = read_config(folder)
    if not any((folder / w).is_file() for w in WEIGHTS):
        other = next((w for w in OTHER_WEIGHTS if (folder / w).exists()), None)
        if other:
            raise KDError(f"Teacher folder '{folder}' holds {other} (TensorFlow/Flax weights) but no PyTorch "
                          "weights; save the model with save_pretrained from PyTorch (model.safetensors).")
        raise KDError(f"Teacher folder '{folder}' has a config.json but no weights (model.safetensors or "
                      "pytorch_model.bin); save the model into it with save_pretrained.")
    try:
        import transformers
        from transformers import AutoModelForImageClassification
    except ImportError:
        raise KDError(f"Teacher folder '{folder}' is a Hugging Face model, and loading it needs the transformers "
                      f"package, which is not installed; install it with `{INSTALL}`.") from None
    remote = _remote_code_files(folder, config)
    for file in remote:
        trust.require(file, "remote_code")  # UntrustedFile: the window asks, the CLI takes --trust FILE
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise KDError(f"The config.json in teacher folder '{folder}' has no model_type, so transformers cannot tell "
                      "which model it is; save the model with save_pretrained.")
    if not remote and model_type not in _image_model_types():
        raise KDError(f"Teacher folder '{folder}' holds a Hugging Face '{model_type}' model ({arch_name(config)}), "
                      "which is not an image classifier; choose a model that AutoModelForImageClassification "
                      "loads (such as ViT, ResNet or ConvNeXt saved with save_pretrained).")
    have = num_labels(config)
    if have != num_classes and not finetune:
        names = class_names(folder)
        shown = f" ({', '.join(names[:5])}{', …' if len(names) > 5 else ''})" if names else ""
        raise KDError(f"The Hugging Face model in '{folder}' classifies {have} classes{shown} but the data has "
                      f"{num_classes}; use data with the model's classes (data.class_names in its output order), or "
                      "set teacher.finetune_layers to train a new last layer for the data's classes.")
    try:
        with _quiet(transformers):
            hf_model, loading = AutoModelForImageClassification.from_pretrained(
                str(folder), local_files_only=True, trust_remote_code=bool(remote), output_loading_info=True)
    except KDError:
        raise
    except Exception as e:  # noqa: BLE001 - damaged weights, an unknown type, code that fails: one sentence
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise KDError(f"The Hugging Face model in '{folder}' could not be loaded by transformers "
                      f"{transformers.__version__} ({first}); check that the folder is complete and was saved "
                      "with save_pretrained by a compatible transformers.") from None
    missing = set(loading.get("missing_keys") or ())
    if missing:
        if not finetune:
            raise KDError(f"The weights in teacher folder '{folder}' lack {len(missing)} of the model's tensors "
                          f"({_few(missing)}), so those layers would be random (a base model without its "
                          "classifier head?); set teacher.finetune_layers to train them, or save the "
                          "...ForImageClassification model.")
        warn(f"The weights in '{folder.name}' lack {_few(missing)}; those layers start random and only "
             "fine-tuning trains them.")
    model = HFClassifier(hf_model, folder)
    model.eval()
    # The folder's class names only while its head is the one in use (teacher_io replaces a head of another size).
    record = {"format": "hf", "path": str(folder), "arch": type(hf_model).__name__, "model_type": model_type,
              "class_names": class_names(folder) if have == num_classes else []}
    if remote:
        record["remote_code"] = [str(f) for f in remote]
        warn(f"Ran the model code in {', '.join(f.name for f in remote)} from '{folder.name}' because you trusted it.")
    return model, record
