"""The compression stage: the enabled steps of [compress] in order, each yielding a variant of the student.

The algorithms (pruning, channel pruning, int8, half weights) live in `outputs.compress` and know nothing of a run;
this module runs them inside a run: fine-tunes through the stage trainer, checkpoints each float variant, reloads
finished ones on resume.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .. import events as ev
from ..errors import KDError
from ..outputs.channel_prune import apply_plan, prune_channels
from ..outputs.compress import (calib_inputs, has_conv, magnitude_prune, make_permanent, quantize_int8, to_half,
                                weight_sparsity)

def enabled_steps(cfg) -> list[str]:
    """Names of the compression steps the config turns on, in order."""
    c = cfg.compress
    steps = []
    if c.finetune_epochs > 0:
        steps.append("finetune")
    if c.prune > 0:
        steps.append("prune")
    if c.channel_prune > 0:
        steps.append("channels")
    if c.int8 != "none":
        steps.append("int8")
    if c.half != "none":
        steps.append(c.half)
    return steps


def _fine_tune(p, name: str, model: nn.Module, epochs: int, stage: str, lr: float) -> None:
    from .stages import train_stage
    from ..train.loop import CrossEntropy, StageSpec
    cfg = p.cfg
    spec = StageSpec(stage, model, CrossEntropy(), epochs, lr, cfg.distill.optimizer,
                     cfg.distill.weight_decay, cfg.distill.scheduler, cfg.data.batch_size, augment=cfg.data.augment,
                     log_every=cfg.distill.log_every)
    # Its own checkpoint, so a stop during this fine-tune resumes it instead of starting it over.
    ckpt = p.rd.checkpoints / f".{name}.train.pt"
    train_stage(p, spec, checkpoint=ckpt, seed_offset=29)
    ckpt.unlink(missing_ok=True)


def _saved(p, name: str) -> dict | None:
    path = p.rd.checkpoint(name)
    if p.resume and path.is_file():
        state = torch.load(path, map_location=p.device, weights_only=True)
        if state.get("complete") and "variant" in state:
            return state
    return None


def _save(p, record: dict, model: nn.Module) -> None:
    from ..store.files import atomic_save_with
    state = {"complete": True, "variant": record, "model": model.state_dict()}
    atomic_save_with(p.rd.checkpoint(record["name"]), lambda tmp: torch.save(state, tmp))


def _float_step(p, name: str, parent: tuple[str, nn.Module], base_factory, work) -> tuple[str, nn.Module]:
    """Run one float step (or reload it on resume); returns the new (name, model)."""
    done = _saved(p, name)
    if done:
        rec = done["variant"]
        model = apply_plan(base_factory(), rec.get("plan") or {}).to(p.device)
        model.load_state_dict(done["model"])
        p.emit(ev.LOG, "compress", message=f"Variant '{name}' already done in this run folder; loaded it.")
    else:
        model = copy.deepcopy(parent[1])
        rec = {"name": name, "parent": parent[0], **work(model)}
        rec["plan"] = rec.get("plan") or _parent_plan(p, parent[0])  # the shapes it inherits, for reloading
        _save(p, rec, model)
    model.eval()
    p.variants.append({**rec, "model": model})
    return name, model


def _parent_plan(p, parent: str) -> dict:
    for v in getattr(p, "variants", []):
        if v["name"] == parent:
            return v.get("plan") or {}
    return {}


def _current(p) -> tuple[str, nn.Module]:
    """The last float variant (the next step's starting point), else the student."""
    for v in reversed(getattr(p, "variants", [])):
        if not v.get("quant") and not v.get("half"):
            return v["name"], v["model"]
    return "student", p.student


def run_finetune(p, base_factory) -> None:
    """Step 1: fine-tune the student on hard labels (appends the "finetune" variant to p.variants)."""
    c = p.cfg.compress
    p.variants = getattr(p, "variants", [])

    def work(m):
        _fine_tune(p, "finetune", m, c.finetune_epochs, "finetune", c.finetune_lr)
        return {"step": f"fine-tuned on hard labels for {c.finetune_epochs} epochs at lr {c.finetune_lr:g}"}

    _float_step(p, "finetune", _current(p), base_factory, work)


def run_compress(p, base_factory) -> None:
    """Steps 2-5: pruning, channel pruning, int8, half weights (each enabled one appends a variant)."""
    c = p.cfg.compress
    p.variants = getattr(p, "variants", [])
    example = p.x_train[:1]

    def prune_step(m):
        magnitude_prune(m, c.prune)
        if c.prune_finetune_epochs:
            _fine_tune(p, "prune", m, c.prune_finetune_epochs, "compress", c.prune_finetune_lr)
        make_permanent(m)
        return {"step": f"global magnitude pruning of {c.prune:.0%} of weights, fine-tuned "
                        f"{c.prune_finetune_epochs} epochs at lr {c.prune_finetune_lr:g}",
                "sparsity": weight_sparsity(m)}

    def channel_step(m):
        plan = prune_channels(m, c.channel_prune)
        merged = {**_parent_plan(p, _current(p)[0]), **plan}
        if c.prune_finetune_epochs:
            _fine_tune(p, "channels", m, c.prune_finetune_epochs, "compress", c.prune_finetune_lr)
        return {"step": f"removed {c.channel_prune:.0%} of channels in {len(plan)} conv layers, fine-tuned "
                        f"{c.prune_finetune_epochs} epochs at lr {c.prune_finetune_lr:g}", "plan": merged}

    if c.prune > 0:
        p.emit(ev.LOG, "compress", message=f"Pruning {c.prune:.0%} of the weights by magnitude.")
        _float_step(p, "prune", _current(p), base_factory, prune_step)
    if c.channel_prune > 0:
        if not has_conv(_current(p)[1]):
            p.emit(ev.WARNING, "compress", message="compress.channel_prune is set but the student has no conv "
                   "layers; channel pruning skipped (magnitude pruning works for any model).")
        else:
            p.emit(ev.LOG, "compress", message=f"Removing {c.channel_prune:.0%} of the conv channels.")
            _float_step(p, "channels", _current(p), base_factory, channel_step)
    parent, model = _current(p)
    plan = _parent_plan(p, parent)
    if c.int8 != "none":
        try:
            q, mode = quantize_int8(model, c.int8, calib_inputs(p.x_train, c.calibration_samples))
            p.variants.append({"name": "int8", "parent": parent, "quant": mode, "plan": plan, "model": q,
                               "step": f"{mode} int8 ({torch.backends.quantized.engine} engine)"})
        except KDError as e:
            p.emit(ev.WARNING, "compress", message=f"int8 variant skipped: {e}")
    if c.half != "none":
        try:
            p.variants.append({"name": c.half, "parent": parent, "half": c.half, "plan": plan,
                               "step": f"{c.half} weights", "model": to_half(model, c.half, example)})
        except KDError as e:
            p.emit(ev.WARNING, "compress", message=f"{c.half} variant skipped: {e}")


