"""Export the student to deployable files; every file is reloaded in its own runtime, compared with the live model
on real test inputs (max |diff|, top-1 agreement) and timed there.

The formats themselves (TorchScript, ONNX, safetensors, state_dict) are in export_formats.py. Writes are atomic
(temp file + rename); existing files are only replaced with `overwrite=True`.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import KDError
from ..store.files import atomic_write_json, read_json
from . import parity
from .evaluate import cpu_threads, input_dtype, median_ms
from .export_formats import (EXPORT_FORMATS, EXTENSIONS, ExportContext, ExportFormat, FormatError,  # noqa: F401
                             arch_file_name, available_formats, export_format, file_name, opset_version)

QUANTIZE = ("none", "int8", "fp16", "bf16")


class ExportExistsError(KDError):
    """A file the export would write is already there and overwriting was not allowed; `path` names it (the CLI
    says "add --force", the window asks before it exports)."""

    def __init__(self, path: Path):
        super().__init__(f"'{path}' already exists; add --force to overwrite it or choose another --out.")
        self.path = Path(path)


# ---- the check ------------------------------------------------------------------------------------------

@torch.inference_mode()
def _run_batched(fn, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch]).float() for i in range(0, len(x), batch)])


@torch.inference_mode()
def time_callable(fn, x: torch.Tensor, repeats: int = 20, warmup: int = 3) -> float:
    """Median ms of fn(x) after warm-up (on the CPU, where every reloaded file runs)."""
    # torch's Timer times any callable, the onnxruntime session's too; its thread setting only touches torch,
    # and the session keeps the intra-op threads it was built with (the same count, see Onnx.load).
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
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown:
        raise EXPORT_FORMATS.unknown(unknown[0])
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
            raise ExportExistsError(existing[0])
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(config_path, {**arch_info, "quantize": quantize})
    except OSError as e:
        raise KDError(f"Cannot write to the export folder '{out_dir}' ({e.strerror or e}); check free space and "
                      "permissions, or choose another folder.") from None
    live = model.eval()
    dtype = input_dtype(live) if quantize != "int8" else torch.float32
    x_check = x_check.to("cpu").to(dtype)
    reference = _run_batched(live, x_check)
    ctx = ExportContext(model_factory, arch_info, quantize, float_model, threads)
    batch64 = x_check.repeat(-(-64 // len(x_check)), *([1] * (x_check.dim() - 1)))[:64]
    exports, failed = [], []
    marks = []  # (format, when it began): a format's time lasts until the next began or the loop ended
    for fmt, path in targets.items():
        marks.append((fmt, time.perf_counter()))
        form = export_format(fmt)
        try:
            missing = form.missing()
            if missing:
                raise FormatError(f"{fmt} export needs the optional package(s) {', '.join(missing)}; install them "
                                  f"with `pip install {' '.join(missing)}`.")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                extra = form.write(live, x_check[:1], path, ctx) or {}
                reloaded = form.load(path, ctx)
                got = _run_batched(reloaded, x_check)
        except FormatError as e:
            failed.append({"format": fmt, "error": str(e)})
            continue
        except KDError:  # the atomic writers' one sentence (a full disk, a read-only folder)
            raise
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
                 "runtime": form.runtime, "quantize": quantize, "checked_on": len(x_check),
                 "config": str(config_path),
                 "latency_ms": {}, **extra}
        entry["parity"] = parity.check(entry)  # the rule this file is judged by (parity.py), and whether it passes
        if latency_repeats > 0:
            with cpu_threads(threads) as n:
                entry["latency_ms"] = {"cpu_b1": time_callable(reloaded, x_check[:1], latency_repeats),
                                       "cpu_b64": time_callable(reloaded, batch64, latency_repeats)}
            entry["cpu_threads"] = n
        exports.append(entry)
    ends = [t for _, t in marks[1:]] + [time.perf_counter()]
    seconds = {fmt: round(end - began, 3) for (fmt, began), end in zip(marks, ends)}  # the next run's ETA reads them
    for f in failed:  # which export a failure belongs to: the model card and the report list only their folder's
        f.update(quantize=quantize, out=str(out_dir))
    return {"exports": exports, "failed": failed, "config": str(config_path), "seconds": seconds}


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
