"""Architecture summaries as plain data (for the Teacher/Student pages and the CLI): layers, shapes, parameters."""

from __future__ import annotations

import torch
from torch import nn


def _shape(out) -> list[int] | None:
    if isinstance(out, torch.Tensor):
        return list(out.shape[1:])
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return list(out[0].shape[1:])
    return None


def summary(model: nn.Module, input_shape: tuple, device: str | torch.device = "cpu", *,
            max_layers: int = 500) -> dict:
    """Layers (name, type, output shape, parameters), totals and input/output shape of `model` as plain data.

    Runs one forward pass on a zero batch of 2 in eval mode (the model's mode is restored afterwards). Models
    whose modules take no hooks (TorchScript, ONNX) list their layers without output shapes.
    """
    device = torch.device(device)
    leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    rows = {n: {"name": n, "type": getattr(m, "original_name", type(m).__name__),
                "output_shape": None, "params": sum(p.numel() for p in m.parameters(recurse=False))}
            for n, m in leaves}
    handles = []
    for n, m in leaves:
        try:
            handles.append(m.register_forward_hook(
                lambda _m, _i, out, n=n: rows[n].__setitem__("output_shape", _shape(out))))
        except Exception:  # noqa: BLE001 - script modules refuse hooks
            pass
    was_training = model.training
    out_shape, error = None, None
    try:
        model.eval()
        with torch.no_grad():
            out_shape = _shape(model(torch.zeros((2, *input_shape), device=device)))
    except Exception as e:  # noqa: BLE001 - a summary reports the failure, it does not raise
        error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    params = list(model.parameters())
    layers = list(rows.values())
    return {
        "type": type(model).__name__,
        "input_shape": list(input_shape),
        "output_shape": out_shape,
        "params": sum(p.numel() for p in params),
        "trainable_params": sum(p.numel() for p in params if p.requires_grad),
        "size_bytes": sum(t.numel() * t.element_size() for t in params + list(model.buffers())),
        "num_layers": len(layers),
        "layers": layers[:max_layers],
        "error": error,
    }


def format_summary(info: dict, max_rows: int = 60) -> str:
    """A fixed-width text table of a summary (for the CLI and logs)."""
    lines = [f"{'layer':<40} {'type':<18} {'output':<18} {'params':>10}"]
    for row in info["layers"][:max_rows]:
        shape = "×".join(map(str, row["output_shape"])) if row["output_shape"] else "-"
        lines.append(f"{row['name'][:40]:<40} {row['type'][:18]:<18} {shape:<18} {row['params']:>10,}")
    if info["num_layers"] > max_rows:
        lines.append(f"... {info['num_layers'] - max_rows} more layers")
    out = "×".join(map(str, info["output_shape"])) if info["output_shape"] else "?"
    lines.append(f"input {'×'.join(map(str, info['input_shape']))} → output {out}; "
                 f"{info['params']:,} parameters ({info['trainable_params']:,} trainable)")
    if info.get("error"):
        lines.append(f"forward failed: {info['error']}")
    return "\n".join(lines)
