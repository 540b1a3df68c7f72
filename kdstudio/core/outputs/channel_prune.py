"""Structured channel pruning for conv nets: remove whole output channels of a Conv2d and shrink what reads them.

A conv qualifies when torch.fx shows its output flowing, through per-channel layers only (BatchNorm, activations,
pooling, dropout, flatten), into exactly one plain Conv2d or Linear and nowhere else. Residual adds, concatenations
and depthwise convs are left alone, so the pruned model is always a smaller model of the same function shape.
The plan `{conv name: channels kept}` is enough to rebuild the pruned shapes before loading its state_dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import KDError

_PASS_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Sigmoid, nn.Tanh, nn.Identity,
                 nn.Dropout, nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_PASS_FUNCTIONS = {F.relu, F.relu6, F.gelu, F.silu, F.hardswish, torch.relu, torch.sigmoid, torch.tanh,
                   F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.dropout}
_PASS_METHODS = {"relu", "sigmoid", "tanh", "contiguous"}


@dataclass
class Link:
    """One prunable conv: the BatchNorms that follow it and the one layer that consumes its channels."""

    conv: str
    norms: list[str] = field(default_factory=list)
    consumer: str = ""
    flattened: bool = False


def find_links(model: nn.Module) -> list[Link]:
    """Every conv whose output channels can be removed safely, in graph order."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as e:  # models with data-dependent control flow
        raise KDError(f"Channel pruning needs a model torch.fx can trace, and this one cannot be traced ({e}); "
                      "set compress.channel_prune = 0.") from None
    mods = dict(model.named_modules())
    links = []
    for node in graph.nodes:
        if node.op == "call_module" and _plain_conv(mods.get(node.target)):
            link = _follow(node, mods)
            if link is not None:
                links.append(link)
    return links


def _plain_conv(m) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups == 1


def _follow(node, mods) -> Link | None:
    link = Link(node.target)
    current = node
    while True:
        users = list(current.users)
        if len(users) != 1:
            return None
        u = users[0]
        if u.op == "call_module":
            m = mods.get(u.target)
            if isinstance(m, nn.BatchNorm2d) and not link.flattened:
                link.norms.append(u.target)
            elif isinstance(m, nn.Flatten):
                link.flattened = True
            elif isinstance(m, _PASS_MODULES):
                pass
            elif _plain_conv(m) and not link.flattened:
                link.consumer = u.target
                return link
            elif isinstance(m, nn.Linear) and link.flattened:
                link.consumer = u.target
                return link
            else:
                return None
        elif u.op == "call_function" and u.target in (torch.flatten,):
            link.flattened = True
        elif u.op == "call_method" and u.target == "flatten":
            link.flattened = True
        elif not ((u.op == "call_function" and u.target in _PASS_FUNCTIONS)
                  or (u.op == "call_method" and u.target in _PASS_METHODS)):
            return None
        if u.args and u.args[0] is not current:  # the channel tensor must be the first input
            return None
        current = u


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    module.train(model.get_submodule(name).training)
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


@torch.no_grad()
def _shrink(model: nn.Module, link: Link, keep: torch.Tensor) -> None:
    conv = model.get_submodule(link.conv)
    new = nn.Conv2d(conv.in_channels, len(keep), conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    1, conv.bias is not None, conv.padding_mode).to(conv.weight.device, conv.weight.dtype)
    new.weight.copy_(conv.weight[keep])
    if conv.bias is not None:
        new.bias.copy_(conv.bias[keep])
    _set(model, link.conv, new)
    for name in link.norms:
        bn = model.get_submodule(name)
        nb = nn.BatchNorm2d(len(keep), bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        nb = nb.to(conv.weight.device)
        if bn.affine:
            nb.weight.copy_(bn.weight[keep])
            nb.bias.copy_(bn.bias[keep])
        if bn.track_running_stats:
            nb.running_mean.copy_(bn.running_mean[keep])
            nb.running_var.copy_(bn.running_var[keep])
            nb.num_batches_tracked.copy_(bn.num_batches_tracked)
        _set(model, name, nb)
    cons = model.get_submodule(link.consumer)
    if isinstance(cons, nn.Conv2d):
        nc = nn.Conv2d(len(keep), cons.out_channels, cons.kernel_size, cons.stride, cons.padding, cons.dilation,
                       1, cons.bias is not None, cons.padding_mode).to(cons.weight.device, cons.weight.dtype)
        nc.weight.copy_(cons.weight[:, keep])
    else:
        block = cons.in_features // conv.out_channels
        cols = (keep[:, None] * block + torch.arange(block, device=keep.device)).flatten()
        nc = nn.Linear(len(cols), cons.out_features, cons.bias is not None).to(cons.weight.device,
                                                                                   cons.weight.dtype)
        nc.weight.copy_(cons.weight[:, cols])
    if cons.bias is not None:
        nc.bias.copy_(cons.bias)
    _set(model, link.consumer, nc)


def _importance(model: nn.Module, link: Link) -> torch.Tensor:
    """L1 norm of each output filter, scaled by |gamma| of the BatchNorm that follows (network slimming)."""
    w = model.get_submodule(link.conv).weight.detach()
    score = w.abs().flatten(1).sum(1)
    for name in link.norms:
        bn = model.get_submodule(name)
        if bn.affine:
            score = score * bn.weight.detach().abs()
    return score


def prune_channels(model: nn.Module, amount: float) -> dict[str, int]:
    """Remove the `amount` fraction of least important output channels of every prunable conv (in place);
    returns the plan {conv name: channels kept}. A KDError when the model has no prunable conv."""
    links = find_links(model)
    if not links:
        raise KDError("Channel pruning found no conv layer it can shrink safely in this model (it needs Conv2d "
                      "layers feeding one Conv2d or Linear); set compress.channel_prune = 0.")
    plan = {}
    for link in links:
        n = model.get_submodule(link.conv).out_channels
        if link.flattened and model.get_submodule(link.consumer).in_features % n:
            continue
        n_keep = max(1, round(n * (1 - amount)))
        keep = _importance(model, link).topk(n_keep).indices.sort().values
        _shrink(model, link, keep)
        plan[link.conv] = n_keep
    return plan


def apply_plan(model: nn.Module, plan: dict[str, int]) -> nn.Module:
    """Give a freshly built model the pruned shapes of `plan` (weights to be loaded from a state_dict after)."""
    for link in find_links(model):
        if link.conv in plan:
            _shrink(model, link, torch.arange(plan[link.conv]))
    return model
