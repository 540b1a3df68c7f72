"""Teachers from files: TorchScript, weights (safetensors / state_dict) into a zoo architecture, ONNX (logits only),
a Hugging Face model folder (hf.py), and a pickled full model only with `teacher.trust_pickle`; TorchScript and
pickles also only after a trust for that file (core/trust.py: its path and content hash). Then: checks against the
data and a sanity check on the validation split (fine-tuning the last N layers is finetune.py).

Files from elsewhere are untrusted: state dicts are read with `torch.load(weights_only=True)`, safetensors with the
`safetensors` package (no code runs, the file is memory-mapped), ONNX with onnxruntime (optional); TorchScript
(`torch.jit.load`) and pickles are programs and load only once that file is trusted. Every problem is a KDError with one sentence naming the file.

Engine order: `load_teacher` → (`finetune.prepare_finetune` → train → `finetune.finish_finetune` when teacher.finetune_layers > 0)
→ `sanity_check` → `check_method` (before distillation) and `check_model(student, ..., role="student")`.
"""

from __future__ import annotations

import math
import pickle
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import models, trust
from ..errors import ConfigError, KDError
from ..data.stream import iter_batches
from .heads import head_name, head_outputs, replace_head
from .teacher_formats import (OnnxTeacher, detect_format, detect_probabilities, load_onnx,  # noqa: F401
                              read_safetensors)

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights", "teacher")
BUFFERS = ("num_batches_tracked", "running_mean", "running_var")
NORMS = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm", "InstanceNorm2d", "SyncBatchNorm")

_INFO: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def info(teacher: nn.Module) -> dict:
    """What load_teacher recorded about a teacher: format, path, arch, logits_only (+ reason), new_head."""
    return _INFO.get(teacher, {})


def add_info(teacher: nn.Module, **fields) -> None:
    """Add to what `info(teacher)` reports (fine-tuning records the layers it trained)."""
    record = _INFO.get(teacher)
    if record is not None:
        _INFO[teacher] = {**record, **fields}


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


# ---- loading ---------------------------------------------------------------------------------------------

def _find_state_dict(obj, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, dict):
        for k in STATE_DICT_KEYS:
            v = obj.get(k)
            if isinstance(v, dict) and v and all(isinstance(t, torch.Tensor) for t in v.values()):
                return v
        keys = ", ".join(map(str, list(obj)[:8]))
        raise KDError(f"Teacher file '{path}' holds a dict ({keys}) with no state_dict of tensors in it; save "
                      "model.state_dict() or use TorchScript.")
    raise KDError(f"Teacher file '{path}' holds a {type(obj).__name__}, not a state_dict; save model.state_dict() "
                  "or use TorchScript.")


def _strip_prefixes(sd: dict) -> dict:
    for prefix in ("module.", "_orig_mod."):  # DataParallel / torch.compile wrappers
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _key_mismatch(missing: list[str], unexpected: list[str], own: dict, sd: dict) -> str:
    """'the file lacks 3 of the model's 62 keys (a, b, c) and it has 2 keys the model does not have (x, y)', then
    what the file's top-level names say about its architecture."""
    def few(keys):  # weights first: a list of num_batches_tracked buffers says little
        keys = [k for k in keys if not k.endswith(BUFFERS)] + [k for k in keys if k.endswith(BUFFERS)]
        return ", ".join(keys[:3]) + (", …" if len(keys) > 3 else "")
    lacks = (f"none of the model's {len(own)} keys is in the file ({few(missing)})" if len(missing) == len(own)
             else f"the file lacks {len(missing)} of the model's {len(own)} keys ({few(missing)})")
    parts = ([lacks] if missing else []) + \
            ([f"{'it has' if missing else 'the file has'} {len(unexpected)} keys the model does not have "
              f"({few(unexpected)})"] if unexpected else [])
    tops = list(dict.fromkeys(k.split(".", 1)[0] for k in sd))
    if set(tops) <= {k.split(".", 1)[0] for k in own}:
        return " and ".join(parts) + "; its top-level names match, so the file is probably this family at another " \
                                     "depth or width"
    return " and ".join(parts) + f"; the file's top-level names are {', '.join(tops[:6])}" + \
        (", …" if len(tops) > 6 else "")


def _into_arch(sd: dict, cfg, bundle, path: Path, warn) -> nn.Module:
    t = cfg.teacher
    sd = _strip_prefixes(dict(sd))
    where = f"architecture '{t.arch}'" + (f" (width {t.width}, depth {t.depth})" if t.width or t.depth else "")
    num_classes = bundle.num_classes
    model = models.build(t.arch, num_classes, bundle.input_shape, t.width, t.depth)
    file_out = head_outputs(sd, head_name(model)) or num_classes
    if file_out != num_classes:
        if not t.finetune_layers:
            raise KDError(f"The teacher in '{path}' has {file_out} outputs but the data has {num_classes} classes; "
                          f"set data.class_names to the teacher's {file_out} classes in its output order, or set "
                          "teacher.finetune_layers to train a new last layer.")
        model = models.build(t.arch, file_out, bundle.input_shape, t.width, t.depth)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise KDError(f"The weights in '{path}' do not fit {where}: {_key_mismatch(missing, unexpected, own, sd)}"
                      "; check teacher.arch, teacher.width and teacher.depth.")
    bad = [k for k in own if tuple(own[k].shape) != tuple(sd[k].shape)]
    if bad:
        k = bad[0]
        raise KDError(f"The weights in '{path}' do not fit {where}: '{k}' has shape {tuple(sd[k].shape)} in the "
                      f"file but {tuple(own[k].shape)} in the model ({len(bad)} such keys); check teacher.arch, "
                      "teacher.width and teacher.depth.")
    model.load_state_dict(sd)
    return model


def _load_torch(path: Path, cfg, bundle, warn) -> tuple[nn.Module, str]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e).lower()
        if "global" not in text and "unsupported class" not in text:  # not a refused class: a damaged file
            raise KDError(f"Teacher file '{path}' could not be read as a PyTorch file (not a state_dict, TorchScript "
                          "or model pickle); it may be corrupt or truncated.") from None
        if not cfg.teacher.trust_pickle:
            raise KDError(f"Teacher file '{path}' is a pickled full model, and loading it runs code from that file; "
                          "if you trust it, set teacher.trust_pickle = true (or save a state_dict or TorchScript "
                          "instead).") from None
        trust.require(path, "pickle")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001 - the pickle needs classes we do not have, or is damaged
            raise KDError(f"Teacher file '{path}' could not be unpickled ({_first_line(e)}); the classes it was "
                          "saved with must be importable here, or save TorchScript instead.") from None
        if isinstance(obj, dict):
            obj = next((v for k, v in obj.items() if k in STATE_DICT_KEYS and isinstance(v, nn.Module)), obj)
        if not isinstance(obj, nn.Module):
            return _into_arch(_find_state_dict(obj, path), cfg, bundle, path, warn), "state_dict"
        warn(f"Loaded the pickled model in '{path}' because teacher.trust_pickle is on.")
        return obj, "pickle"
    except Exception as e:  # noqa: BLE001 - zip/EOF/runtime errors all mean a damaged file
        raise KDError(f"Teacher file '{path}' could not be read as a PyTorch file ({_first_line(e)}); it may be "
                      "corrupt or truncated.") from None
    return _into_arch(_find_state_dict(obj, path), cfg, bundle, path, warn), "state_dict"


def load_teacher(cfg, bundle, device, warn: Callable[[str], None] | None = None) -> nn.Module:
    """The teacher in cfg.teacher.path as an eval-mode module on `device` that outputs logits, checked against the
    data (input shape and number of classes); problems raise KDError with one sentence. The teacher stage freezes
    it (models.frozen.FrozenTeacher)."""
    warn = warn or (lambda msg: None)
    t = cfg.teacher
    if not t.path:
        raise ConfigError("teacher.source = \"file\" needs teacher.path; choose the teacher file.", key="teacher.path")
    path = Path(t.path).expanduser()
    fmt = "hf" if t.arch == "hf" else detect_format(path)
    record = {"format": fmt, "path": str(path), "arch": None, "logits_only": False, "logits_only_reason": "",
              "new_head": None}
    if fmt == "hf":  # a Hugging Face model folder (models/hf.py)
        from .hf import load_folder
        model, more = load_folder(path, bundle.num_classes, finetune=bool(t.finetune_layers), warn=warn)
        record.update(more)
    elif fmt == "onnx":
        model: nn.Module = load_onnx(path, bundle, device)
        record.update(logits_only=True, logits_only_reason="an ONNX teacher gives logits only")
        x = next((t for t in (bundle.x_val, bundle.x_train) if len(t)), bundle.x_train)
        try:
            probabilities = detect_probabilities(model, x)
        except Exception:  # noqa: BLE001 - a graph that refuses the data is reported by check_model below
            probabilities = False
        if probabilities:
            warn(f"The ONNX teacher '{path.name}' outputs probabilities (its rows sum to 1), not logits; their "
                 "logarithms are used as its logits, so the temperature softens them as it would logits.")
        if model.output_index:
            warn(f"The ONNX teacher '{path.name}' has {len(model.session.get_outputs())} outputs; its class scores "
                 f"are output '{model.output_name}' (number {model.output_index + 1}).")
    elif fmt == "safetensors":
        model = _into_arch(read_safetensors(path), cfg, bundle, path, warn)
        record["arch"] = t.arch
    elif fmt == "torchscript":
        trust.require(path, "torchscript")  # a TorchScript file is a program: never loaded untrusted
        try:
            model = torch.jit.load(str(path), map_location="cpu")
        except Exception as e:  # noqa: BLE001
            raise KDError(f"Teacher file '{path}' could not be read as TorchScript ({_first_line(e)}); it may be "
                          "corrupt or saved by a newer PyTorch.") from None
        record.update(logits_only=True, logits_only_reason="TorchScript modules take no feature hooks")
    else:
        model, kind = _load_torch(path, cfg, bundle, warn)
        record["format"] = kind
        record["arch"] = t.arch if kind == "state_dict" else type(model).__name__
    if not isinstance(model, OnnxTeacher):
        if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
            model = model.float()
            warn(f"The teacher's weights in '{path.name}' were not float32; converted them to float32.")
    model = model.to(device)
    model.eval()  # frozen for good by the teacher stage (models.frozen.FrozenTeacher)
    out = check_model(model, bundle, device, role="teacher", where=str(path), allow_other_classes=True)
    if out != bundle.num_classes:
        name = replace_head(model, bundle.num_classes) if t.finetune_layers else None
        if name is None:
            raise KDError(f"The teacher in '{path}' outputs {out} values per sample but the data has "
                          f"{bundle.num_classes} classes; set data.class_names to the teacher's classes in its "
                          "output order" + (", or fine-tune a new last layer with teacher.finetune_layers."
                                            if fmt not in ("onnx", "torchscript") else "."))
        model.to(device)
        model.eval()
        record["new_head"] = name
        warn(f"The teacher has {out} outputs; its last layer '{name}' was replaced by a new one with "
             f"{bundle.num_classes} outputs, trained by fine-tuning.")
    _INFO[model] = record
    return model


# ---- checks ----------------------------------------------------------------------------------------------

def _expects(model: nn.Module) -> str:
    if isinstance(model, OnnxTeacher):
        return f"; it expects {model.describe_input()}"
    for name, p in model.named_parameters():
        if name.endswith("weight") and p.dim() == 4:
            return f"; its first layer '{name.rpartition('.')[0]}' takes {p.shape[1]} channels"
        if name.endswith("weight") and p.dim() == 2:
            return f"; its first layer '{name.rpartition('.')[0]}' takes {p.shape[1]} features"
    return ""


def check_model(model: nn.Module, bundle, device, *, role: str = "student", where: str = "",
                allow_other_classes: bool = False) -> int:
    """Run one batch of the data through `model`; KDError when it refuses the input shape or its output size is
    not the number of classes. Returns the output size."""
    x = next((t for t in (bundle.x_val, bundle.x_train, bundle.x_test) if len(t)), bundle.x_train)[:2].to(device)
    label = f"The {role}" + (f" in '{where}'" if where else "")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as e:  # noqa: BLE001 - any failure here is an input mismatch from the user's view
        raise KDError(f"{label} does not accept the data's inputs of shape {tuple(x.shape)} (batch, "
                      f"{', '.join(map(str, x.shape[1:]))}){_expects(model)} ({_first_line(e)}); check "
                      "data.image_size and the data's channels.") from None
    finally:
        model.train(was_training)
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise KDError(f"{label} gives outputs of shape {shape} for a batch of {len(x)}; it must give one row of "
                      "class scores (logits) per sample.")
    if out.shape[1] != bundle.num_classes and not allow_other_classes:
        raise KDError(f"{label} outputs {out.shape[1]} values per sample but the data has {bundle.num_classes} "
                      f"classes; build it for {bundle.num_classes} classes.")
    return int(out.shape[1])


def _feature_method(spec) -> str:
    """The feature method a [distill] section or an objective uses ("" = logits only)."""
    if hasattr(spec, "method"):  # a DistillConfig
        from .. import losses
        cls = losses.REGISTRY.get(spec.method)
        if cls is not None and getattr(cls, "kind", "") == "feature":
            return spec.method
        return getattr(spec, "feature_method", "") or ""
    return getattr(spec, "name", type(spec).__name__) if getattr(spec, "uses_features", False) else ""


def check_method(teacher: nn.Module, distill) -> None:
    """KDError when the method (cfg.distill, or a built objective) needs intermediate features and the teacher
    gives logits only (ONNX, TorchScript); call it before building the objective."""
    rec = info(teacher) or {"logits_only": isinstance(teacher, OnnxTeacher),
                            "logits_only_reason": "an ONNX teacher gives logits only"}
    name = _feature_method(distill)
    if name and rec.get("logits_only"):
        raise KDError(f"Method '{name}' matches intermediate features, but {rec['logits_only_reason']}; pick a "
                      "logits-based method such as 'kd', or load the teacher as weights into a zoo architecture.")


# ---- sanity check ----------------------------------------------------------------------------------------

@dataclass
class SanityResult:
    """The teacher's accuracy on one split against chance (the majority class's share)."""

    accuracy: float
    chance: float
    threshold: float
    split: str
    samples: int
    ok: bool
    message: str

    def to_dict(self) -> dict:
        """Plain data for summary.json."""
        return asdict(self)


@torch.no_grad()
def sanity_check(teacher: nn.Module, bundle, device, *, skip: bool = False, batch_size: int = 512) -> SanityResult:
    """Evaluate the teacher on the validation split (else test, else train); near chance → KDError that points at
    preprocessing or class order, unless `skip` (then the result says so and the engine shows a warning)."""
    split, x, y = next(((n, x, y) for n, x, y in (("validation", bundle.x_val, bundle.y_val),
                                                  ("test", bundle.x_test, bundle.y_test),
                                                  ("training", bundle.x_train, bundle.y_train)) if len(y)))
    was_training = teacher.training
    teacher.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    i = 0
    for xb in iter_batches(x, batch_size):  # streamed splits are read by the workers, batch by batch
        out = teacher(xb.to(device))
        out = out[0] if isinstance(out, (tuple, list)) else out
        correct += (out.argmax(1) == y[i:i + len(xb)].to(device)).sum()
        i += len(xb)
    teacher.train(was_training)
    n = len(y)
    acc = int(correct) / n
    chance = float(torch.bincount(y).max()) / n
    threshold = chance + max(0.1 * (1 - chance), 3 * math.sqrt(chance * (1 - chance) / n))
    ok = acc >= threshold
    msg = (f"The teacher scores {acc:.1%} on the {split} split ({n} samples; chance is {chance:.1%})")
    if ok:
        msg += "."
    else:
        msg += (", about chance: its inputs are probably preprocessed differently from its training (check "
                "data.image_size, data.normalize, data.mean/std) or its classes are in another order (set "
                "data.class_names); set teacher.skip_sanity_check = true to go on anyway.")
        if not skip:
            raise KDError(msg)
    return SanityResult(acc, chance, threshold, split, n, ok, msg)
