"""Export the student to deployable files; every file is reloaded and compared with the live model."""

from __future__ import annotations


import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import KDError
from .store import atomic_save_with, atomic_write_json

FORMATS = {"torchscript": "student.torchscript.pt", "state_dict": "student.state_dict.pt"}


def _export_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():  # torch.jit is deprecated upstream but remains the loadable C++/Python format
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example, check_trace=False)
        atomic_save_with(path, lambda tmp: torch.jit.save(traced, tmp))


def _load_torchscript(path: Path, model_factory) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu")


def _export_state_dict(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_save_with(path, lambda tmp: torch.save(state, tmp))


def _load_state_dict(path: Path, model_factory) -> nn.Module:
    m = model_factory()
    m.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return m.eval()


_WRITERS = {"torchscript": (_export_torchscript, _load_torchscript),
            "state_dict": (_export_state_dict, _load_state_dict)}


@torch.inference_mode()
def export_model(model: nn.Module, model_factory, arch_info: dict, formats: list[str], out_dir: Path,
                 x_check: torch.Tensor) -> list[dict]:
    """Write each format into out_dir, reload it, and record bytes and max |difference| on `x_check`."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise KDError(f"Cannot create the export folder '{out_dir}' ({e.strerror or e}); choose another folder.")
    live = model.to("cpu").eval()
    x_check = x_check.to("cpu").float()
    reference = live(x_check).float()
    results = []
    atomic_write_json(out_dir / "student.arch.json", arch_info)
    for fmt in formats:
        if fmt not in _WRITERS:
            raise KDError(f"Export format '{fmt}' is not available yet; use {', '.join(_WRITERS)}.")
        write, load = _WRITERS[fmt]
        path = out_dir / FORMATS[fmt]
        try:
            write(live, x_check[:1], path)
        except OSError as e:
            raise KDError(f"Could not write '{path}' ({e.strerror or e}); check free space and permissions.")
        reloaded = load(path, model_factory)
        diff = (reloaded(x_check).float() - reference).abs().max().item()
        agree = (reloaded(x_check).argmax(1) == reference.argmax(1)).float().mean().item()
        results.append({"format": fmt, "path": str(path), "bytes": path.stat().st_size,
                        "max_abs_diff": diff, "top1_agreement": agree})
    return results


def arch_json(arch: str, width: int, depth: int, num_classes: int, input_shape: tuple, class_names: list[str],
              mean: list[float], std: list[float]) -> dict:
    """What is needed to rebuild and feed the student: arch, knobs, classes, input shape, normalisation."""
    return {"arch": arch, "width": width, "depth": depth, "num_classes": num_classes,
            "input_shape": list(input_shape), "class_names": class_names, "mean": mean, "std": std,
            "load": "kdstudio.core.models.build(arch, num_classes, input_shape, width, depth)"
                    ".load_state_dict(torch.load(path, weights_only=True))"}


