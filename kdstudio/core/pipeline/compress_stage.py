"""The compression stage: the enabled steps of [compress] in order, each yielding a variant of the student.

The algorithms (pruning, channel pruning, int8, half weights) live in `outputs.compress` and know nothing of a run;
this module runs them inside a run: fine-tunes through the stage trainer, checkpoints each float variant, reloads
finished ones on resume.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import KDError
from ..outputs.channel_prune import apply_plan, prune_channels
from ..outputs.compress import (calib_inputs, has_conv, int8_path, magnitude_prune, make_permanent, quantize_int8,
                                to_half, weight_sparsity)
from ..outputs.evaluate import accuracy
from ..train.checkpoints import read_checkpoint
from ..train.loop import CrossEntropy
from .context import Variant, clip_hooks, stage_spec


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


class _Chain:
    """The compression steps of one run: the context, the variants made so far, the base student factory."""

    def __init__(self, ctx, student: nn.Module):
        from ..outputs.artifacts import student_factory
        self.ctx, self.student = ctx, student
        self.variants: list[Variant] = []
        self.base_factory = student_factory(ctx.cfg, ctx.data.num_classes, ctx.data.input_shape)

    def fine_tune(self, name: str, model: nn.Module, epochs: int, stage: str, lr: float) -> None:
        """Hard-label training of `model` in place, with its own checkpoint so a stop resumes it."""
        ckpt = self.ctx.rd.checkpoints / f".{name}.train.pt"
        self.ctx.train(stage_spec(self.ctx, stage, model, CrossEntropy(), epochs, lr), checkpoint=ckpt,
                       seed_offset=29, hooks=clip_hooks(self.ctx))
        ckpt.unlink(missing_ok=True)

    def _saved(self, name: str) -> dict | None:
        path = self.ctx.rd.checkpoint(name)
        if self.ctx.resume and path.is_file():
            state = read_checkpoint(path, self.ctx.device)
            if state.get("complete") and "variant" in state:
                return state
        return None

    def _save(self, record: dict, model: nn.Module) -> None:
        from ..store.files import atomic_save_buffered
        state = {"complete": True, "variant": record, "model": model.state_dict()}
        atomic_save_buffered(self.ctx.rd.checkpoint(record["name"]), lambda buf: torch.save(state, buf))

    def float_step(self, name: str, work) -> None:
        """Run one float step from the current float model (or reload it on resume)."""
        parent_name, parent = self.current()
        done = self._saved(name)
        if done:
            rec = done["variant"]
            model = apply_plan(self.base_factory(), rec.get("plan") or {}).to(self.ctx.device)
            model.load_state_dict(done["model"])
            self.ctx.log(f"Variant '{name}' already done in this run folder; loaded it.", "compress")
        else:
            model = copy.deepcopy(parent)
            rec = {"name": name, "parent": parent_name, **work(model)}
            rec["plan"] = rec.get("plan") or self.plan_of(parent_name)  # the shapes it inherits, for reloading
            self._save(rec, model)
        model.eval()
        self.variants.append(Variant(name, model, rec))

    def plan_of(self, name: str) -> dict:
        """The channel plan of a variant ({} for the student)."""
        return next((v.plan for v in self.variants if v.name == name), {})

    def current(self) -> tuple[str, nn.Module]:
        """The last float variant (the next step's starting point), else the student."""
        for v in reversed(self.variants):
            if v.is_float:
                return v.name, v.model
        return "student", self.student


def compress_stage(ctx, student: nn.Module) -> tuple[list[str], list[Variant]]:
    """Fine-tune on hard labels, prune, shrink channels, int8, half: the enabled steps, each a variant."""
    steps = enabled_steps(ctx.cfg)
    chain = _Chain(ctx, student)
    if not steps:
        return [], []
    c = ctx.cfg.compress
    x_test, y_test = ctx.data.test
    if "finetune" in steps:
        ctx.begin("finetune", epochs=c.finetune_epochs, lr=c.finetune_lr)

        def finetune(m):
            chain.fine_tune("finetune", m, c.finetune_epochs, "finetune", c.finetune_lr)
            return {"step": f"fine-tuned on hard labels for {c.finetune_epochs} epochs at lr {c.finetune_lr:g}"}

        chain.float_step("finetune", finetune)
        ctx.finish("finetune", accuracy=accuracy(chain.variants[-1].model, x_test, y_test))
    if [s for s in steps if s != "finetune"]:
        ctx.begin("compress", steps=[s for s in steps if s != "finetune"])
        _compress_steps(ctx, chain)
        ctx.finish("compress", variants=[v.name for v in chain.variants])
    return steps, chain.variants


def _compress_steps(ctx, chain: _Chain) -> None:
    """Steps 2-5: pruning, channel pruning, int8, half weights (each enabled one appends a variant)."""
    c = ctx.cfg.compress
    x_train = ctx.data.train.x

    def prune_step(m):
        magnitude_prune(m, c.prune)
        if c.prune_finetune_epochs:
            chain.fine_tune("prune", m, c.prune_finetune_epochs, "compress", c.prune_finetune_lr)
        make_permanent(m)
        return {"step": f"global magnitude pruning of {c.prune:.0%} of weights, fine-tuned "
                        f"{c.prune_finetune_epochs} epochs at lr {c.prune_finetune_lr:g}",
                "sparsity": weight_sparsity(m)}

    def channel_step(m):
        plan = prune_channels(m, c.channel_prune)
        merged = {**chain.plan_of(chain.current()[0]), **plan}
        if c.prune_finetune_epochs:
            chain.fine_tune("channels", m, c.prune_finetune_epochs, "compress", c.prune_finetune_lr)
        return {"step": f"removed {c.channel_prune:.0%} of channels in {len(plan)} conv layers, fine-tuned "
                        f"{c.prune_finetune_epochs} epochs at lr {c.prune_finetune_lr:g}", "plan": merged}

    if c.prune > 0:
        ctx.log(f"Pruning {c.prune:.0%} of the weights by magnitude.")
        chain.float_step("prune", prune_step)
    if c.channel_prune > 0:
        if not has_conv(chain.current()[1]):
            ctx.warn("compress.channel_prune is set but the student has no conv layers; channel pruning skipped "
                     "(magnitude pruning works for any model).")
        else:
            ctx.log(f"Removing {c.channel_prune:.0%} of the conv channels.")
            chain.float_step("channels", channel_step)
    parent, model = chain.current()
    plan = chain.plan_of(parent)
    if c.int8 != "none":
        try:
            q, mode = quantize_int8(model, c.int8, calib_inputs(x_train, c.calibration_samples))
            chain.variants.append(Variant("int8", q, {"name": "int8", "parent": parent, "quant": mode, "plan": plan,
                                                      "step": f"{mode} int8 ({int8_path(q)})"}))
        except KDError as e:
            ctx.warn(f"int8 variant skipped: {e}")
    if c.half != "none":
        try:
            half = to_half(model, c.half, x_train[:1])
            chain.variants.append(Variant(c.half, half, {"name": c.half, "parent": parent, "half": c.half,
                                                         "plan": plan, "step": f"{c.half} weights"}))
        except KDError as e:
            ctx.warn(f"{c.half} variant skipped: {e}")
