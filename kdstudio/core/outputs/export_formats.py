"""The export formats: each is one ExportFormat class (writer, reloader, file ending, runtime, needed packages)
registered in EXPORT_FORMATS; export.py writes, reloads, compares and times them.

TorchScript, ONNX (onnx + onnxruntime, optional; the dynamo exporter when onnxscript is installed), safetensors and
state_dict here; torch.export (.pt2), OpenVINO IR and ExecuTorch (.pte) in export_pt2.py. Each next to the arch JSON.
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
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import KDError
from ..registry import Registry
from ..store.files import atomic_save_buffered, atomic_save_with
from .evaluate import input_dtype

EXPORT_FORMATS: Registry[type[ExportFormat]] = Registry("export format", key="export.formats")


class FormatError(Exception):
    """One format could not be written or checked; the other formats go on."""


@dataclass
class ExportContext:
    """What a format may need besides the model: how to rebuild it, its description, the quantization."""

    factory: Callable[[], nn.Module]
    arch_info: dict
    quantize: str = "none"
    float_model: nn.Module | None = None  # the float model an int8 export was quantized from
    threads: int = 0


class ExportFormat(ABC):
    """One export format: its file ending, the runtime that reloads it, the packages it needs, writer and reloader."""

    extension: str = ""
    runtime: str = ""
    needs: tuple[str, ...] = ()

    def missing(self) -> list[str]:
        """The packages this format needs that are not installed."""
        return [m for m in self.needs if importlib.util.find_spec(m) is None]

    @abstractmethod
    def write(self, model: nn.Module, example: torch.Tensor, path: Path, ctx: ExportContext) -> dict | None:
        """Write `model` to `path` atomically; FormatError when this format cannot hold it. Returns extra fields
        for the export's entry (or None)."""

    @abstractmethod
    def load(self, path: Path, ctx: ExportContext) -> Callable[[torch.Tensor], torch.Tensor]:
        """The written file reloaded in its own runtime: a callable from inputs to logits."""


def export_format(name: str) -> ExportFormat:
    """The format registered as `name`; ConfigError naming the nearest format when there is none."""
    return EXPORT_FORMATS.get(name)()


def available_formats() -> list[dict]:
    """Each export format with whether it works here and, when not, the pip command that enables it."""
    out = []
    for name in EXPORT_FORMATS:
        missing = export_format(name).missing()
        out.append({"format": name, "available": not missing, "file": file_name(name),
                    "reason": f"needs the optional package(s) {', '.join(missing)}: pip install {' '.join(missing)}"
                    if missing else ""})
    return out


def file_name(fmt: str, quantize: str = "none", stem: str = "student") -> str:
    """The file name of one format: student.onnx, student.int8.torchscript.pt, ..."""
    tag = "" if quantize in ("none", "", None) else f".{quantize}"
    if fmt not in EXPORT_FORMATS:
        raise EXPORT_FORMATS.unknown(fmt)
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


# ---- the formats ----------------------------------------------------------------------------------------

@EXPORT_FORMATS.register("torchscript")
class TorchScript(ExportFormat):
    """A traced TorchScript module: loads in Python or C++ without the model's code."""

    extension, runtime = "torchscript.pt", "torch.jit"

    def write(self, model, example, path, ctx):
        with warnings.catch_warnings():  # torch.jit is deprecated upstream but remains the loadable C++/Python format
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, example, check_trace=False)
            atomic_save_buffered(path, lambda buf: torch.jit.save(traced, buf))  # never aborts on a full disk

    def load(self, path, ctx):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.load(str(path), map_location="cpu")


@EXPORT_FORMATS.register("onnx")
class Onnx(ExportFormat):
    """An ONNX graph run by onnxruntime, from the dynamo exporter (the legacy TorchScript-based one only where the
    dynamo one is missing or fails, with a note); int8 is onnxruntime's own dynamic quantization of the float model."""

    extension, runtime, needs = "onnx", "onnxruntime (CPU)", ("onnx", "onnxruntime")

    def write(self, model, example, path, ctx):
        source = ctx.float_model if ctx.quantize == "int8" else model
        if source is None:
            raise FormatError("int8 ONNX is made from the float model by onnxruntime's quantizer, and none was "
                              "given.")
        x = example.to(input_dtype(source))
        attempts, note = [], ""
        if importlib.util.find_spec("onnxscript") is None:
            note = ("the dynamo exporter needs onnxscript (`pip install onnxscript`), so the legacy TorchScript-based "
                    "exporter wrote this file")
        else:
            attempts.append(("dynamo", lambda tmp: _dynamo_export(source, x, tmp)))
        attempts.append(("torchscript", lambda tmp: _legacy_export(source, x, tmp)))
        for i, (exporter, export) in enumerate(attempts):
            try:
                if ctx.quantize == "int8":
                    _quantize_onnx(export, path)
                else:
                    atomic_save_with(path, export)
            except (OSError, KDError):  # a full disk or read-only folder: said by the writer, not as an ONNX problem
                raise
            except Exception as e:
                if i + 1 < len(attempts):
                    note = (f"the dynamo exporter failed ({_first_line(e)}), so the legacy TorchScript-based "
                            "exporter wrote this file")
                    continue
                raise FormatError(_onnx_message(e)) from None
            extra = {"opset": _file_opset(path), "exporter": exporter}
            return {**extra, "note": note} if note else extra

    def load(self, path, ctx):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = ctx.threads or torch.get_num_threads()  # same threads as torch
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        want = {"tensor(float16)": torch.float16}.get(sess.get_inputs()[0].type, torch.float32)

        def run(x):
            return torch.from_numpy(sess.run(None, {name: x.to(want).contiguous().numpy()})[0])
        return run


@EXPORT_FORMATS.register("safetensors")
class Safetensors(ExportFormat):
    """The weights as safetensors (no pickle), with the arch JSON in the file's metadata."""

    extension, runtime = "safetensors", "torch (eager)"

    def write(self, model, example, path, ctx):
        if ctx.quantize == "int8":
            raise FormatError("safetensors stores plain tensors, not int8 packed weights; export int8 as "
                              "torchscript, onnx or state_dict.")
        from safetensors.torch import save_model  # handles tied weights (stored once)
        meta = {"kdstudio_arch": json.dumps(ctx.arch_info), "format": "pt"}
        atomic_save_with(path, lambda tmp: save_model(model, tmp, metadata=meta))

    def load(self, path, ctx):
        from safetensors.torch import load_model
        m = ctx.factory()
        load_model(m, str(path))
        return m.eval()


@EXPORT_FORMATS.register("state_dict")
class StateDict(ExportFormat):
    """torch.save of the state_dict, read back with weights_only=True."""

    extension, runtime = "state_dict.pt", "torch (eager)"

    def write(self, model, example, path, ctx):
        state = model.state_dict()  # keeps _metadata: int8 modules need its version numbers to load again
        for k, v in state.items():
            if isinstance(v, torch.Tensor):
                state[k] = v.detach().cpu()
        atomic_save_buffered(path, lambda buf: torch.save(state, buf))

    def load(self, path, ctx):
        m = ctx.factory()
        m.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return m.eval()


# The torch.export family; lazy, with its file ending as metadata, so that listing formats imports no converter.
EXPORT_FORMATS.register_lazy("torch_export", "kdstudio.core.outputs.export_pt2:TorchExport", extension="pt2")
EXPORT_FORMATS.register_lazy("openvino", "kdstudio.core.outputs.export_pt2:OpenVino", extension="openvino.xml")
EXPORT_FORMATS.register_lazy("executorch", "kdstudio.core.outputs.export_pt2:ExecuTorch", extension="pte")

EXTENSIONS = {name: EXPORT_FORMATS.meta(name).get("extension") or EXPORT_FORMATS.get(name).extension
              for name in EXPORT_FORMATS}  # the CLI's and GUI's list


# ---- ONNX helpers ---------------------------------------------------------------------------------------

def _dynamo_export(model: nn.Module, x: torch.Tensor, tmp: str) -> None:
    """torch.onnx.export(..., dynamo=True): the graph captured by torch.export, dynamic batch, opset >= 18."""
    batch = torch.export.Dim("batch", min=1)
    example = torch.cat([x[:1], x[:1]])  # a batch of one would be specialised to the constant 1
    with warnings.catch_warnings(), _quiet_stdout():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)  # it logs each torchvision op it skips when torchvision is absent
        try:
            program = torch.onnx.export(model, (example,), dynamo=True, input_names=["input"],
                                        output_names=["logits"], dynamic_shapes=({0: batch},),
                                        opset_version=max(18, opset_version()), verbose=False)
            program.save(tmp)
        finally:
            logging.disable(logging.NOTSET)


def _legacy_export(model: nn.Module, x: torch.Tensor, tmp: str) -> None:
    """The TorchScript-based exporter (deprecated upstream): kept for models the dynamo exporter cannot capture."""
    with warnings.catch_warnings(), _quiet_stdout():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), tmp, dynamo=False, input_names=["input"], output_names=["logits"],
                          opset_version=opset_version(), dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def _file_opset(path: Path) -> int:
    """The default-domain opset written in an ONNX file."""
    import onnx
    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0][:160] if lines else type(e).__name__


def _quantize_onnx(export, path: Path) -> None:
    """Export the float graph next to `path`, then write onnxruntime's dynamic int8 of it to `path`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    float_path = path.with_name(path.name + ".fp32.tmp")
    logging.disable(logging.WARNING)  # the quantizer's advice about pre-processing goes to the root logger
    try:
        atomic_save_with(float_path, export)
        # uint8 weights: x86 CPUs without VNNI multiply uint8 x int8 with VPMADDUBSW, whose 16-bit pair sums
        # saturate (the default QInt8 file disagreed with the torch int8 model on 3.6% of the digits there);
        # uint8 x uint8 is computed exactly on every CPU, so the file gives the same result anywhere.
        atomic_save_with(path, lambda tmp: quantize_dynamic(str(float_path), tmp, weight_type=QuantType.QUInt8))
    finally:
        logging.disable(logging.NOTSET)
        float_path.unlink(missing_ok=True)


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


def _onnx_message(e: Exception) -> str:
    text = str(e)
    op = re.search(r"operator '([^']+)'", text)
    if op:
        return (f"the ONNX exporter cannot handle the operator '{op.group(1)}' (opset {opset_version()}); the "
                "other formats were written. Replace that operation in the model or use TorchScript.")
    return f"ONNX export failed: {text.splitlines()[0][:200] if text else type(e).__name__}."
