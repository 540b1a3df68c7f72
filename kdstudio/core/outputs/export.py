"""Export the student to deployable files; every file is reloaded in its own runtime, compared with the live model
on real test inputs (max |diff|, top-1 agreement) and timed there.

Formats: TorchScript, ONNX (onnx + onnxruntime, optional), safetensors, state_dict; each with the arch JSON.
Writes are atomic (temp file + rename); existing files are only replaced with `overwrite=True`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import logging
import os
import re
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import KDError
from .evaluate import cpu_threads, median_ms
from ..store.files import atomic_save_with, atomic_write_json, read_json

EXTENSIONS = {"torchscript": "torchscript.pt", "onnx": "onnx", "safetensors": "safetensors",
              "state_dict": "state_dict.pt"}
FORMATS = {f: f"student.{ext}" for f, ext in EXTENSIONS.items()}  # default file names (public)
NEEDS = {"onnx": ("onnx", "onnxruntime")}
QUANTIZE = ("none", "int8", "fp16", "bf16")


class FormatError(Exception):
    """One format could not be written or checked; the other formats go on."""


def available_formats() -> list[dict]:
    """Each export format with whether it works here and, when not, the pip command that enables it."""
    out = []
    for fmt in EXTENSIONS:
        missing = [m for m in NEEDS.get(fmt, ()) if importlib.util.find_spec(m) is None]
        out.append({"format": fmt, "available": not missing, "file": FORMATS[fmt],
                    "reason": f"needs the optional package(s) {', '.join(missing)}: pip install {' '.join(missing)}"
                    if missing else ""})
    return out


def _require(fmt: str) -> None:
    missing = [m for m in NEEDS.get(fmt, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise FormatError(f"{fmt} export needs the optional package(s) {', '.join(missing)}; install them with "
                          f"`pip install {' '.join(missing)}`.")


def file_name(fmt: str, quantize: str = "none", stem: str = "student") -> str:
    """The file name of one format: student.onnx, student.int8.torchscript.pt, ..."""
    tag = "" if quantize in ("none", "", None) else f".{quantize}"
    return f"{stem}{tag}.{EXTENSIONS[fmt]}"


def arch_file_name(quantize: str = "none", stem: str = "student") -> str:
    """The name of the JSON describing the exported model's architecture, shared by all of its formats."""
    tag = "" if quantize in ("none", "", None) else f".{quantize}"
    return f"{stem}{tag}.arch.json"


def opset_version() -> int:
    """The ONNX opset used: the newest that the TorchScript exporter, the installed onnx and onnxruntime support."""
    from torch.onnx import _constants
    best = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_DEFAULT_OPSET)
    import onnx
    return _runtime_opset(min(best, onnx.defs.onnx_opset_version()))


@functools.lru_cache(maxsize=None)
def _runtime_opset(ceiling: int) -> int:
    """The newest opset <= ceiling that onnxruntime loads: it publishes no such number, and 1.16 stops at 19 while
    torch writes 20, so a one-node model is tried at each opset."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return ceiling
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ("x", "y")]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", io[:1], io[1:])
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    for opset in range(ceiling, 12, -1):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
        try:
            ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            return opset
        except Exception:  # noqa: BLE001 - "opset N is not supported" has no exception type of its own
            continue
    return ceiling


# ---- writers and loaders --------------------------------------------------------------------------------

def _write_torchscript(model, example, path, ctx):
    with warnings.catch_warnings():  # torch.jit is deprecated upstream but remains the loadable C++/Python format
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example, check_trace=False)
        atomic_save_with(path, lambda tmp: torch.jit.save(traced, tmp))


def _load_torchscript(path, ctx):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu")


def _write_state_dict(model, example, path, ctx):
    state = model.state_dict()  # keeps _metadata: int8 modules need its version numbers to load again
    for k, v in state.items():
        if isinstance(v, torch.Tensor):
            state[k] = v.detach().cpu()
    atomic_save_with(path, lambda tmp: torch.save(state, tmp))


def _load_state_dict(path, ctx):
    m = ctx["factory"]()
    m.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return m.eval()


def _write_safetensors(model, example, path, ctx):
    if ctx["quantize"] == "int8":
        raise FormatError("safetensors stores plain tensors, not int8 packed weights; export int8 as torchscript, "
                          "onnx or state_dict.")
    from safetensors.torch import save_model  # handles tied weights (stored once)
    meta = {"kdstudio_arch": json.dumps(ctx["arch_info"]), "format": "pt"}
    atomic_save_with(path, lambda tmp: save_model(model, tmp, metadata=meta))


def _load_safetensors(path, ctx):
    from safetensors.torch import load_model
    m = ctx["factory"]()
    load_model(m, str(path))
    return m.eval()


def _write_onnx(model, example, path, ctx):
    _require("onnx")
    source = ctx.get("float_model") if ctx["quantize"] == "int8" else model
    if source is None:
        raise FormatError("int8 ONNX is made from the float model by onnxruntime's quantizer, and none was given.")
    opset = opset_version()
    ctx["opset"] = opset

    def export(tmp):
        with warnings.catch_warnings(), _quiet_stdout():
            warnings.simplefilter("ignore")
            torch.onnx.export(source, (example.to(_dtypes(source)[0]),), tmp, dynamo=False,
                              input_names=["input"], output_names=["logits"], opset_version=opset,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    try:
        if ctx["quantize"] == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic
            float_path = path.with_name(path.name + ".fp32.tmp")
            logging.disable(logging.WARNING)  # the quantizer's advice about pre-processing goes to the root logger
            try:
                atomic_save_with(float_path, export)
                # uint8 weights: x86 CPUs without VNNI multiply uint8 x int8 with VPMADDUBSW, whose 16-bit pair
                # sums saturate (the default QInt8 file disagreed with the torch int8 model on 3.6% of the digits
                # there); uint8 x uint8 is computed exactly on every CPU, so the file gives the same result anywhere.
                atomic_save_with(path, lambda tmp: quantize_dynamic(str(float_path), tmp,
                                                                    weight_type=QuantType.QUInt8))
            finally:
                logging.disable(logging.NOTSET)
                float_path.unlink(missing_ok=True)
        else:
            atomic_save_with(path, export)
    except OSError:
        raise
    except Exception as e:
        raise FormatError(_onnx_message(e)) from None


@contextlib.contextmanager
def _quiet_stdout():
    """Silence fd 1 (C++ included): the exporter prints its whole graph there when an operator fails, and the
    FormatError message names the operator instead."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _dtypes(model):
    seen = [p.dtype for p in model.parameters() if p.is_floating_point()]
    return [d for d in seen if d in (torch.float16, torch.bfloat16)][:1] or [torch.float32]


def _onnx_message(e: Exception) -> str:
    text = str(e)
    op = re.search(r"operator '([^']+)'", text)
    if op:
        return (f"the ONNX exporter cannot handle the operator '{op.group(1)}' (opset {opset_version()}); the "
                "other formats were written. Replace that operation in the model or use TorchScript.")
    return f"ONNX export failed: {text.splitlines()[0][:200] if text else type(e).__name__}."


def _load_onnx(path, ctx):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = ctx.get("threads") or torch.get_num_threads()  # same threads as torch
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    want = {"tensor(float16)": torch.float16}.get(sess.get_inputs()[0].type, torch.float32)

    def run(x):
        return torch.from_numpy(sess.run(None, {name: x.to(want).contiguous().numpy()})[0])
    return run


_WRITERS = {"torchscript": (_write_torchscript, _load_torchscript), "onnx": (_write_onnx, _load_onnx),
            "safetensors": (_write_safetensors, _load_safetensors),
            "state_dict": (_write_state_dict, _load_state_dict)}
RUNTIMES = {"torchscript": "torch.jit", "onnx": "onnxruntime (CPU)", "safetensors": "torch (eager)",
            "state_dict": "torch (eager)"}


# ---- the check ------------------------------------------------------------------------------------------

@torch.inference_mode()
def _run_batched(fn, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch]).float() for i in range(0, len(x), batch)])


@torch.inference_mode()
def time_callable(fn, x: torch.Tensor, repeats: int = 20, warmup: int = 3) -> float:
    """Median ms of fn(x) after warm-up (on the CPU, where every reloaded file runs)."""
    # torch's Timer times any callable, the onnxruntime session's too; its thread setting only touches torch,
    # and the session keeps the intra-op threads it was built with (the same count, see _load_onnx).
    return median_ms(fn, x, repeats, warmup, "cpu")


def _disk_error(e: Exception) -> bool:
    """OSError, or torch's stream writer failing (how a full disk shows up inside torch.save)."""
    text = str(e)
    return isinstance(e, OSError) or (isinstance(e, RuntimeError) and ("write failed" in text
                                                                        or "failed writing" in text))


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return (text.splitlines()[0][:200] if text else type(e).__name__)


def _targets(formats, out_dir: Path, quantize: str, stem: str) -> dict[str, Path]:
    unknown = [f for f in formats if f not in _WRITERS]
    if unknown:
        raise KDError(f"Export format '{unknown[0]}' does not exist; use {', '.join(_WRITERS)}.")
    if quantize not in QUANTIZE:
        raise KDError(f"--quantize '{quantize}' is not one of {', '.join(q for q in QUANTIZE if q != 'none')}.")
    return {f: out_dir / file_name(f, quantize, stem) for f in formats}


@torch.inference_mode()
def export_all(model: nn.Module, model_factory, arch_info: dict, formats: list[str], out_dir: Path,
               x_check: torch.Tensor, *, overwrite: bool = True, quantize: str = "none",
               float_model: nn.Module | None = None, latency_repeats: int = 20, stem: str = "student",
               threads: int = 0) -> dict:
    """Write each format, reload it in its runtime, compare and time it. Returns {"exports": [...], "failed":
    [{"format", "error"}]}; a format that fails (missing package, unsupported operator) does not stop the others.
    KDError before anything is written when a target exists and overwrite is False, or when the disk refuses."""
    out_dir = Path(out_dir)
    targets = _targets(formats, out_dir, quantize, stem)
    config_path = out_dir / arch_file_name(quantize, stem)
    if not overwrite:
        # The arch JSON is shared by every format of this model: rewriting it with the same content loses nothing.
        same_config = config_path.exists() and read_json(config_path) == json.loads(
            json.dumps({**arch_info, "quantize": quantize}))
        existing = [p for p in [*targets.values()] + ([] if same_config else [config_path]) if p.exists()]
        if existing:
            raise KDError(f"'{existing[0]}' already exists; add --force to overwrite it or choose another --out.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(config_path, {**arch_info, "quantize": quantize})
    except OSError as e:
        raise KDError(f"Cannot write to the export folder '{out_dir}' ({e.strerror or e}); check free space and "
                      "permissions, or choose another folder.") from None
    live = model.eval()
    dtype = _dtypes(live)[0] if quantize != "int8" else torch.float32
    x_check = x_check.to("cpu").to(dtype)
    reference = _run_batched(live, x_check)
    ctx = {"factory": model_factory, "arch_info": arch_info, "quantize": quantize, "float_model": float_model,
           "threads": threads}
    batch64 = x_check.repeat(-(-64 // len(x_check)), *([1] * (x_check.dim() - 1)))[:64]
    exports, failed = [], []
    for fmt, path in targets.items():
        write, load = _WRITERS[fmt]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                write(live, x_check[:1], path, ctx)
                reloaded = load(path, ctx)
                got = _run_batched(reloaded, x_check)
        except FormatError as e:
            failed.append({"format": fmt, "error": str(e)})
            continue
        except Exception as e:
            if _disk_error(e):
                reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[-1][:120]
                raise KDError(f"Could not write '{path}' ({reason}); no partial file was left. Check free space "
                              "and permissions.") from None
            failed.append({"format": fmt, "error": f"{fmt} export failed: {_first_line(e)}"})
            continue
        entry = {"format": fmt, "path": str(path), "bytes": path.stat().st_size,
                 "max_abs_diff": (got - reference).abs().max().item(),
                 "top1_agreement": (got.argmax(1) == reference.argmax(1)).float().mean().item(),
                 "runtime": RUNTIMES[fmt], "quantize": quantize, "checked_on": len(x_check),
                 "config": str(config_path),
                 "latency_ms": {}}
        if fmt == "onnx":
            entry["opset"] = ctx.get("opset")
        if latency_repeats > 0:
            with cpu_threads(threads) as n:
                entry["latency_ms"] = {"cpu_b1": time_callable(reloaded, x_check[:1], latency_repeats),
                                       "cpu_b64": time_callable(reloaded, batch64, latency_repeats)}
            entry["cpu_threads"] = n
        exports.append(entry)
    return {"exports": exports, "failed": failed, "config": str(config_path)}


def export_model(model: nn.Module, model_factory, arch_info: dict, formats: list[str], out_dir: Path,
                 x_check: torch.Tensor, **kwargs) -> list[dict]:
    """export_all for callers that want all-or-error: the entries, or a KDError naming the first failed format."""
    result = export_all(model, model_factory, arch_info, formats, out_dir, x_check, **kwargs)
    if result["failed"]:
        f = result["failed"][0]
        raise KDError(f"{f['format']}: {f['error']}")
    return result["exports"]


def arch_json(arch: str, width: int, depth: int, num_classes: int, input_shape: tuple, class_names: list[str],
              mean: list[float], std: list[float], plan: dict | None = None) -> dict:
    """What is needed to rebuild and feed the student: arch, knobs, classes, input shape, normalisation."""
    info = {"arch": arch, "width": width, "depth": depth, "num_classes": num_classes,
            "input_shape": list(input_shape), "class_names": class_names, "mean": mean, "std": std,
            "load": "kdstudio.core.models.build(arch, num_classes, input_shape, width, depth)"
                    ".load_state_dict(torch.load(path, weights_only=True))"}
    if plan:
        info["channel_plan"] = plan
        info["load"] = ("kdstudio.core.outputs.channel_prune.apply_plan(kdstudio.core.models.build(arch, num_classes, "
                        "input_shape, width, depth), channel_plan).load_state_dict(...)")
    return info
