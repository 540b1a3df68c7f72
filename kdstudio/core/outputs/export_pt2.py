"""The export formats built on `torch.export`: the exported program itself (.pt2), OpenVINO IR (Intel CPUs) and
ExecuTorch (.pte, phones). Registered lazily in export_formats.py, so listing the formats imports none of them.

Each is exported with a dynamic batch dimension and reloaded in its own runtime: torch.export.load, the OpenVINO
CPU plugin at fp32 precision (its default on bf16-capable CPUs is bf16, which would not be a parity check) and the
ExecuTorch runtime with the XNNPACK delegate.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..store.files import atomic_save_buffered, atomic_save_with
from .compress import is_pt2e
from .export_formats import ExportFormat, FormatError

# ExecuTorch plans its memory for the largest input it will see; export.py checks in batches of 256.
EXECUTORCH_MAX_BATCH = 256


def _example(example: torch.Tensor) -> torch.Tensor:
    """A batch of two: torch.export specialises a batch of one to the constant 1, which is not dynamic."""
    return torch.cat([example[:1], example[:1]])


def exported_program(model, example: torch.Tensor, max_batch: int | None = None):
    """torch.export of `model` with a dynamic batch dimension; FormatError (one sentence) when it cannot trace."""
    batch = torch.export.Dim("batch", min=1, max=max_batch) if max_batch else torch.export.Dim("batch", min=1)
    try:
        with _quiet_logs():
            return torch.export.export(model, (_example(example),), dynamic_shapes=({0: batch},), strict=False)
    except Exception as e:  # noqa: BLE001 - torch.export raises many kinds (UserError, Unsupported, ...)
        raise FormatError(f"torch.export cannot capture this model ({_first_line(e)}); the other formats were "
                          "written. Make its forward free of data-dependent Python control flow.") from None


def _no_int8(ctx, fmt: str, model, takes_pt2e: bool = False) -> None:
    """FormatError for an int8 model this format cannot hold: torch.ao's int8 modules never export, and OpenVINO
    and ExecuTorch do not convert the x86 PT2E graph (OpenVINO stops at an int8 + float add)."""
    if ctx.quantize != "int8" or (takes_pt2e and is_pt2e(model)):
        return
    if takes_pt2e:
        raise FormatError(f"int8 {fmt} holds the PT2E int8 model, and this one came from torch.ao (its int8 modules "
                          "do not export); install torchao (`pip install torchao`) or export int8 as onnx, "
                          "torchscript or state_dict.")
    raise FormatError(f"{fmt} is exported from float or half weights here: it does not convert the x86 int8 graph; "
                      "export int8 as onnx, torch_export, torchscript or state_dict.")


class TorchExport(ExportFormat):
    """The torch.export ExportedProgram (.pt2): the graph PyTorch's current deployment tools start from."""

    extension, runtime = "pt2", "torch.export"

    def write(self, model, example, path, ctx):
        _no_int8(ctx, "torch_export", model, takes_pt2e=True)
        ep = exported_program(model, example)

        # into memory, then our writer: torch's C++ stream writer aborts the process on a full disk
        atomic_save_buffered(path, lambda buf: torch.export.save(ep, buf))
        return {"dynamic_batch": True}

    def load(self, path, ctx):
        return torch.export.load(str(path)).module()


class OpenVino(ExportFormat):
    """OpenVINO IR (.xml graph + .bin weights) converted from the exported program, run by the OpenVINO CPU
    runtime."""

    extension, runtime, needs = "openvino.xml", "OpenVINO (CPU)", ("openvino",)

    def write(self, model, example, path, ctx):
        import openvino as ov
        _no_int8(ctx, "openvino", model)
        ep = exported_program(model, example)
        try:
            with _quiet_logs():
                ir = ov.convert_model(ep)
            ir.reshape({ir.inputs[0]: ov.PartialShape([-1, *example.shape[1:]])})
        except Exception as e:  # noqa: BLE001 - OpConversionFailure and friends
            raise FormatError(f"OpenVINO cannot convert this model ({_first_line(e)}); the other formats were "
                              "written.") from None
        bin_path = path.with_suffix(".bin")
        # The .xml names its .bin by file name: both are written in a scratch folder, then renamed (.bin first).
        scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            ov.save_model(ir, str(scratch / path.name), compress_to_fp16=False)
            os.replace(scratch / bin_path.name, bin_path)
            os.replace(scratch / path.name, path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return {"bytes": path.stat().st_size + bin_path.stat().st_size, "weights_file": str(bin_path),
                "dynamic_batch": True}

    def load(self, path, ctx):
        import openvino as ov
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {
            "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": ctx.threads or torch.get_num_threads()})
        request = compiled.create_infer_request()
        want = torch.float16 if compiled.inputs[0].get_element_type() == ov.Type.f16 else torch.float32

        def run(x):
            return torch.from_numpy(request.infer([x.to(want).contiguous().numpy()])[0].copy())
        return run


class ExecuTorch(ExportFormat):
    """An ExecuTorch program (.pte) lowered to the XNNPACK delegate, the CPU backend of phones; reloaded with the
    ExecuTorch runtime."""

    extension, runtime, needs = "pte", "ExecuTorch (XNNPACK)", ("executorch",)

    def write(self, model, example, path, ctx):
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge, to_edge_transform_and_lower
        _no_int8(ctx, "executorch", model)
        ep = exported_program(model, example, EXECUTORCH_MAX_BATCH)
        full = torch.zeros(EXECUTORCH_MAX_BATCH, *example.shape[1:], dtype=example.dtype)
        extra = {"dynamic_batch": True, "max_batch": EXECUTORCH_MAX_BATCH}
        try:
            with _quiet_logs():
                program = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
                if not _runs(program.buffer, full):
                    # XNNPACK 1.5 sizes a convolution's dynamic input far below the exported bound (15 of 256
                    # images on the digits CNN); the portable kernels honour it, so they carry such a model.
                    # (exported again: lowering rewrote the first program in place)
                    program = to_edge(exported_program(model, example, EXECUTORCH_MAX_BATCH)).to_executorch()
                    extra.update(runtime="ExecuTorch (portable kernels)", note=(
                        f"the XNNPACK delegate refused a batch of {EXECUTORCH_MAX_BATCH}, so this program uses "
                        "ExecuTorch's portable kernels"))
        except Exception as e:  # noqa: BLE001 - lowering errors have no common type
            raise FormatError(f"ExecuTorch cannot lower this model ({_first_line(e)}); the other formats were "
                              "written.") from None

        def write(tmp):
            with open(tmp, "wb") as f:
                program.write_to_file(f)
        atomic_save_with(path, write)
        return extra

    def load(self, path, ctx):
        from executorch.runtime import Runtime
        with _quiet_logs():
            method = Runtime.get().load_program(str(path)).load_method("forward")

        def run(x):
            return method.execute([x.contiguous()])[0]
        return run


def _runs(buffer: bytes, x: torch.Tensor) -> bool:
    """True when an ExecuTorch program accepts `x` (its largest planned batch)."""
    from executorch.runtime import Runtime
    try:
        Runtime.get().load_program(bytes(buffer)).load_method("forward").execute([x])
        return True
    except RuntimeError:
        return False


@contextlib.contextmanager
def _quiet_logs():
    """Converters log warnings about ops they skip (torchvision's, absent here) to the root logger."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0][:200] if lines else type(e).__name__
