"""Compression after distillation, each step optional, in this order; every step yields a variant.

1. fine-tune the student on hard labels (few epochs, low LR)              -> "finetune"
2. global magnitude pruning, fine-tuned with the masks, made permanent    -> "prune"
3. structured channel pruning for conv nets, then a fine-tune             -> "channels"
4. int8: dynamic (Linear layers) or static (conv nets, calibrated)        -> "int8"
   through PT2E (torch.export + torchao's X86InductorQuantizer) where torchao is installed, else torch.ao
5. fp16 / bf16 weights                                                    -> "fp16" / "bf16"

Steps 1-3 chain (each starts from the previous float variant); 4 and 5 both start from the last float variant.
Float variants are saved as checkpoints/<name>.pt ({"model", "variant", "complete"}); int8 and half variants are
re-derived from their parent (deterministic: calibration uses the first training samples).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import warnings

import torch
from torch import nn

from .channel_prune import apply_plan
from ..errors import KDError

PREFERRED_ENGINES = ("x86", "fbgemm", "onednn", "qnnpack")
HALF_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


# ---- quantization ---------------------------------------------------------------------------------------

def supported_engines() -> list[str]:
    """PyTorch's quantized CPU engines on this machine ('none' excluded)."""
    return [e for e in torch.backends.quantized.supported_engines if e != "none"]


def quant_engine() -> str:
    """The quantized engine to use here; KDError when this CPU build has none."""
    engines = supported_engines()
    if not engines:
        raise KDError("int8 quantization is not supported by this CPU's PyTorch backend (no quantized engine: "
                      "fbgemm/x86 need an x86 CPU with AVX2, qnnpack an ARM CPU); skip int8 or use fp16.")
    current = torch.backends.quantized.engine
    return current if current in engines else next((e for e in PREFERRED_ENGINES if e in engines), engines[0])


def has_conv(model: nn.Module) -> bool:
    """True when the model has Conv layers (static int8 and channel pruning apply)."""
    return any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) for m in model.modules())


def quantize_int8(model: nn.Module, mode: str = "auto", calib_x: torch.Tensor | None = None) -> tuple[nn.Module, str]:
    """An int8 copy of a float model on the CPU: (model, "dynamic" | "static"). "auto" picks static for conv
    nets (calibrated on `calib_x`) and dynamic otherwise. KDError when the backend cannot do it.

    PT2E (the path PyTorch points to: torch.export, then torchao's quantizer for x86 CPUs) where torchao is installed
    and inputs are given; torch.ao's eager/FX quantization, deprecated upstream, only where PT2E cannot: torchao
    absent, no example input (dynamic int8 without data), or a model that torch.export cannot capture."""
    engine = quant_engine()
    if mode in ("auto", "int8"):
        mode = "static" if has_conv(model) and calib_x is not None else "dynamic"
    if mode == "static" and calib_x is None:
        raise KDError("Static int8 needs calibration inputs; use int8 = \"dynamic\" or give training data.")
    float_model = copy.deepcopy(model).to("cpu").float().eval()
    torch.backends.quantized.engine = engine
    probe = (calib_x[:2] if calib_x is not None else None)
    if mode == "dynamic" and not any(isinstance(m, nn.Linear) for m in float_model.modules()):
        raise KDError("Dynamic int8 quantizes Linear layers and this model has none; use "
                      "int8 = \"static\" for conv nets.")
    if calib_x is not None and pt2e_available():
        try:
            q = _pt2e_int8(float_model, calib_x.to("cpu").float(), dynamic=mode == "dynamic")
            q(probe.to("cpu").float())
            return q, mode
        except Exception:  # noqa: BLE001 - torch.export's many refusals: the older path below may still work
            float_model = copy.deepcopy(model).to("cpu").float().eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated upstream, kept for what PT2E lacks
            if mode == "dynamic":
                q = torch.ao.quantization.quantize_dynamic(float_model, {nn.Linear}, dtype=torch.qint8)
            else:
                q = _static_int8(float_model, calib_x.to("cpu").float(), engine)
            if probe is not None:
                q(probe.to("cpu").float())
    except KDError:
        raise
    except Exception as e:
        raise KDError(f"{mode.capitalize()} int8 quantization failed with this CPU's backend ('{engine}'): "
                      f"{str(e).splitlines()[0][:200]}. Skip int8 or try fp16.") from None
    return q.eval(), mode


@functools.lru_cache(maxsize=None)
def pt2e_available() -> bool:
    """True when torchao's PT2E quantization (prepare_pt2e / convert_pt2e, X86InductorQuantizer) imports here."""
    if importlib.util.find_spec("torchao") is None:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401
            import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401
        return True
    except Exception:  # noqa: BLE001 - a torchao built for another torch fails in many ways
        return False


def is_pt2e(model: nn.Module) -> bool:
    """True for a model quantized through PT2E (a torch.export graph with quantize/dequantize nodes)."""
    return bool(getattr(model, "kdstudio_pt2e", False))


def int8_path(model: nn.Module) -> str:
    """How an int8 model was made, for the model card: PT2E or torch.ao with its engine."""
    if is_pt2e(model):
        return "PT2E: torch.export + torchao X86InductorQuantizer"
    return f"torch.ao, {torch.backends.quantized.engine} engine"


def _pt2e_int8(model: nn.Module, calib_x: torch.Tensor, dynamic: bool) -> nn.Module:
    """PT2E: capture with torch.export (dynamic batch), annotate with the x86 quantizer, calibrate, convert."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
        quantizer = xiq.X86InductorQuantizer()
        quantizer.set_global(xiq.get_default_x86_inductor_quantization_config(is_dynamic=dynamic))
        example = torch.cat([calib_x[:1], calib_x[:1]])  # a batch of one would be specialised to the constant 1
        graph = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},),
                                    strict=False).module()
        prepared = prepare_pt2e(graph, quantizer)
        with torch.inference_mode():
            for i in range(0, len(calib_x), 256):
                prepared(calib_x[i:i + 256])
        q = convert_pt2e(prepared)
        _allow_eval(q)
    _drop_unused_tensors(q)
    q.kdstudio_pt2e = True
    return q


def _static_int8(model: nn.Module, calib_x: torch.Tensor, engine: str) -> nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    try:
        prepared = prepare_fx(model, get_default_qconfig_mapping(engine), (calib_x[:1],))
    except Exception as e:
        raise KDError(f"Static int8 needs a model torch.fx can trace, and this one cannot be traced "
                      f"({str(e).splitlines()[0][:160]}); use int8 = \"dynamic\".") from None
    with torch.inference_mode():
        for i in range(0, len(calib_x), 256):
            prepared(calib_x[i:i + 256])
    return convert_fx(prepared)


def _allow_eval(gm: nn.Module) -> None:
    """Let .eval() / .train() work on the exported graph, which refuses them, and return the model as nn.Module
    does (torchao's allow_exported_model_train_eval returns None, and callers chain `model.eval()`)."""
    import types

    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train

    def train(self, mode: bool = True):
        (move_exported_model_to_train if mode else move_exported_model_to_eval)(self)
        return self

    gm.train = types.MethodType(train, gm)
    gm.eval = types.MethodType(lambda self: train(self, False), gm)


def _drop_unused_tensors(gm: nn.Module) -> None:
    """Delete the float weights that convert_pt2e left behind beside their int8 copies (no node reads them), so
    the int8 model's size is its own."""
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    for name, _ in list(gm.named_parameters()) + list(gm.named_buffers()):
        if name not in used:
            owner, _, leaf = name.rpartition(".")
            delattr(gm.get_submodule(owner) if owner else gm, leaf)


def to_half(model: nn.Module, kind: str, example: torch.Tensor) -> nn.Module:
    """A copy with fp16 or bf16 weights (inputs must then be of that dtype); KDError when this device lacks the
    kernels (checked by running `example`)."""
    dtype = HALF_DTYPES[kind]
    m = copy.deepcopy(model).to(dtype).eval()
    try:
        with torch.inference_mode():
            p = next(m.parameters())
            m(example[:1].to(p.device, dtype))
    except (RuntimeError, NotImplementedError) as e:
        raise KDError(f"{kind} weights cannot run on this device ({str(e).splitlines()[0][:160]}); "
                      "use the other half type or skip it.") from None
    return m


# ---- pruning --------------------------------------------------------------------------------------------

def _prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]


def magnitude_prune(model: nn.Module, amount: float) -> nn.Module:
    """Zero the `amount` fraction of smallest-magnitude Linear/Conv weights across the whole model (in place; the
    masks stay active so a fine-tune keeps them zero; call make_permanent after)."""
    import torch.nn.utils.prune as prune
    params = _prunable(model)
    if not params:
        raise KDError("Magnitude pruning found no Linear or Conv weights in this model; set compress.prune = 0.")
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold pruning masks into the weights (plain parameters again, zeros included)."""
    import torch.nn.utils.prune as prune
    for m, name in _prunable(model):
        if prune.is_pruned(m) and hasattr(m, name + "_orig"):
            prune.remove(m, name)
    return model


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of Linear/Conv weights that are exactly zero."""
    total = zeros = 0
    for m, name in _prunable(model):
        w = getattr(m, name)
        total += w.numel()
        zeros += int((w == 0).sum())
    return zeros / total if total else 0.0


# ---- variants of a finished run ---------------------------------------------------------------------

def calib_inputs(x_train: torch.Tensor, n: int) -> torch.Tensor:
    """The calibration inputs for static int8: the first n training samples, on the CPU."""
    return x_train[:max(1, n)].detach().to("cpu").float()


def public_record(v: dict) -> dict:
    """A variant record without its live model (what summary.json stores)."""
    return {k: val for k, val in v.items() if k != "model"}


def rebuild_variants(records: list[dict], student: nn.Module, base_factory, checkpoints, x_train: torch.Tensor,
                     calibration_samples: int) -> dict[str, nn.Module]:
    """Models of a finished run's variants, from summary["compress"]["variants"] and checkpoints/ (CPU)."""
    models: dict[str, nn.Module] = {"student": student}
    for rec in records:
        name, parent = rec["name"], models.get(rec.get("parent", "student"))
        if parent is None:
            continue
        if rec.get("quant"):
            models[name] = quantize_int8(parent, rec["quant"], calib_inputs(x_train, calibration_samples))[0]
        elif rec.get("half"):
            models[name] = to_half(parent, rec["half"], x_train[:1])
        else:
            path = checkpoints / f"{name}.pt"
            if not path.is_file():
                continue
            state = torch.load(path, map_location="cpu", weights_only=True)
            m = apply_plan(base_factory(), rec.get("plan") or {})
            m.load_state_dict(state["model"])
            models[name] = m.eval()
    return models
