"""A model's classifier head: which module it is, and a new one for another number of classes.

timm models say it themselves (`get_classifier()`); otherwise the head is the last linear layer in definition
order (torchvision's resnet `fc`, mobilenet_v3 `classifier.3`, efficientnet `classifier.1`, the zoo's
`classifier`), or, in a model without one, its last convolution when nothing with weights follows it
(torchvision's squeezenet `classifier.1`, a 1×1 convolution to the classes).
"""

from __future__ import annotations

import torch
from torch import nn


def _weighted(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules()
            if n and any(True for _ in m.parameters(recurse=False))]


def head_name(model: nn.Module) -> str | None:
    """Module path of the classifier head, or None when the model has none that can be told (TorchScript)."""
    if isinstance(model, torch.jit.ScriptModule):
        return None
    get = getattr(model, "get_classifier", None)
    if callable(get):
        try:
            head = get()
        except Exception:  # noqa: BLE001 - a model whose get_classifier fails falls back to the search below
            head = None
        if isinstance(head, (nn.Linear, nn.Conv2d)):
            name = next((n for n, m in model.named_modules() if m is head and n), None)
            if name:
                return name
    linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if linear:
        return linear[-1]
    weighted = _weighted(model)
    if weighted and isinstance(weighted[-1][1], nn.Conv2d):
        return weighted[-1][0]
    return None


def head_outputs(state_dict: dict, head: str | None) -> int | None:
    """How many outputs the head has in a state_dict (its weight's first dimension), None when not there."""
    w = state_dict.get(f"{head}.weight") if head else None
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.dim() >= 1 else None


def replace_head(model: nn.Module, num_classes: int) -> str | None:
    """Give `model` a new, untrained head for `num_classes` outputs (timm: its own reset_classifier); the new
    head's path, or None when there is no head to replace."""
    name = head_name(model)
    if name is None:
        return None
    reset = getattr(model, "reset_classifier", None)
    if callable(reset) and callable(getattr(model, "get_classifier", None)):
        try:
            reset(num_classes)
            return head_name(model) or name
        except Exception:  # noqa: BLE001 - replace the module itself below
            pass
    old = model.get_submodule(name)
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    else:
        new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding,
                        bias=old.bias is not None)
    new = new.to(next(old.parameters()).device)
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], new)
    return name
