"""Feature matching without model edits: layers named by module path, captured with forward hooks.

    names = matching.layer_names(model)                      # hookable paths, as model.named_modules() shows
    rows = matching.describe_layers(model, example_input)    # [{name, type, shape, calls}] in execution order
    matcher = matching.build_matcher(student, teacher, ["features.1"], ["features.2"], method, example_input)
    ... student(x); teacher(x) ...                           # the hooks capture the named outputs
    s_feats, t_feats = matcher()                             # matched (pooled, adapted) lists, one per pair
    matcher.remove()                                         # unhook before export

Adapters (1×1 conv for (B, C, H, W), linear otherwise) are created when the student's channel or feature size
differs from the teacher's and must be trained with the student (they are the matcher's parameters). Spatial
sizes are matched by adaptive average pooling to the smaller size; a 4-D feature paired with a flat one is
averaged over its spatial positions. Every mismatch that cannot be fixed is a ConfigError before training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import close_names

MAX_ADAPTER_PARAMS = 20_000_000


def _shape(per_sample) -> str:
    return "(B, " + ", ".join(str(d) for d in per_sample) + ")" if per_sample else "(B,)"


def layer_names(model: nn.Module) -> list[str]:
    """Every module path that can be hooked (the model itself, path "", excluded)."""
    if isinstance(model, torch.jit.ScriptModule):
        return []
    return [name for name, _ in model.named_modules() if name]


def check_accessible(model: nn.Module, role: str, method: str) -> None:
    """ConfigError when `model` offers no hookable layers (TorchScript, a single opaque module)."""
    if not layer_names(model):
        kind = "a TorchScript model" if isinstance(model, torch.jit.ScriptModule) else "a model without sub-layers"
        raise ConfigError(f"The {role} is {kind}, so its layers cannot be hooked for feature method '{method}'; "
                          f"load the {role} as a state_dict or Python model, or choose a logit method.",
                          key="distill.method")


def resolve(model: nn.Module, name: str, role: str) -> nn.Module:
    """The module at path `name`; unknown names raise ConfigError listing close names."""
    modules = dict(model.named_modules())
    if name and name in modules:
        return modules[name]
    names = layer_names(model)
    near = close_names(name, names, n=5)
    if not near:
        near = [n for n in names if name and (name in n or n.endswith(name.split(".")[-1]))][:5]
    hint = f"close names: {', '.join(near)}" if near else f"its layers include: {', '.join(names[:8])}"
    raise ConfigError(f"The {role} has no layer '{name}'; {hint}.", key=f"distill.{role}_layers")


class FeatureHooks:
    """Forward hooks that keep the latest output of each named module in `self.out`."""

    def __init__(self, model: nn.Module, names: list[str], role: str = "model"):
        self.out: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {n: 0 for n in names}
        self._handles = []
        for name in dict.fromkeys(names):
            module = resolve(model, name, role)
            self._handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name):
        def hook(module, args, output):
            self.out[name] = output
            self.calls[name] += 1
        return hook

    def clear(self) -> None:
        """Forget the captured outputs (and their graphs)."""
        self.out.clear()

    def remove(self) -> None:
        """Unregister every hook."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.out.clear()


def _dry_run(model: nn.Module, names: list[str], example_input, role: str) -> dict[str, tuple]:
    """Run `model` once in eval mode on a couple of samples; per-sample shape and call count per name."""
    hooks = FeatureHooks(model, names, role)
    modes = {m: m.training for m in model.modules()}
    x = example_input[:2]
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for m, training in modes.items():
            m.training = training
        outputs, calls = dict(hooks.out), dict(hooks.calls)
        hooks.remove()
    info = {}
    for name in names:
        out = outputs.get(name)
        if out is None:
            raise ConfigError(f"The {role} layer '{name}' did not run in a forward pass; pick a layer the "
                              f"{role} uses.", key=f"distill.{role}_layers")
        if not isinstance(out, torch.Tensor):
            raise ConfigError(f"The {role} layer '{name}' returns a {type(out).__name__}, not a tensor; pick a "
                              "layer that returns one tensor.", key=f"distill.{role}_layers")
        if out.dim() < 2 or out.shape[0] != x.shape[0]:
            raise ConfigError(f"The {role} layer '{name}' gives shape {tuple(out.shape)} for a batch of "
                              f"{x.shape[0]}, whose first dimension is not the batch; pick another layer.",
                              key=f"distill.{role}_layers")
        if calls[name] > 1:
            parent = name.rsplit(".", 1)[0] if "." in name else "its parent"
            raise ConfigError(f"The {role} layer '{name}' runs {calls[name]} times per forward pass, so its "
                              f"output is ambiguous; pick a layer that runs once (e.g. '{parent}').",
                              key=f"distill.{role}_layers")
        info[name] = tuple(out.shape[1:])
    return info


def _trace(model: nn.Module, example_input) -> list[dict]:
    """Run once in eval mode on two samples; one row per module in the order the modules finish."""
    rows: dict[str, dict] = {}
    modules = dict(model.named_modules())
    handles = []

    def hook_for(name):
        def hook(module, args, output):
            if name not in rows:
                shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else None
                first = args[0] if args and isinstance(args[0], torch.Tensor) else None
                rows[name] = {"name": name, "type": type(module).__name__, "shape": shape, "calls": 0,
                              "out": output, "in": first}
            rows[name]["calls"] += 1
        return hook

    for n in layer_names(model):
        handles.append(modules[n].register_forward_hook(hook_for(n)))
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(example_input[:2])
    finally:
        for m, training in modes.items():
            m.training = training
        for h in handles:
            h.remove()
    return list(rows.values())


def describe_layers(model: nn.Module, example_input) -> list[dict]:
    """Each hookable layer in execution order: {name, type, shape (per sample; None if not a tensor), calls}."""
    return [{k: r[k] for k in ("name", "type", "shape", "calls")} for r in _trace(model, example_input)]


def suggest_layer(model: nn.Module, example_input, four_d: bool = False) -> str:
    """A default layer: the last 4-D output (four_d) or the embedding that feeds the last linear layer; "" if none.

    Among modules returning the same tensor (a block and its last child) the outer one is named.
    """
    rows = [r for r in _trace(model, example_input) if r["shape"] is not None and r["calls"] == 1]
    if four_d:
        maps = [r for r in rows if len(r["shape"]) == 3]
        pick = ([r for r in maps if r["shape"][1] * r["shape"][2] > 1] or maps)[-1:]
    else:
        linear = [i for i, r in enumerate(rows) if r["type"] == "Linear"]
        if not linear:
            pick = rows[-2:-1]
        else:
            i = linear[-1]
            before = rows[:i]
            pick = [r for r in before if r["out"] is rows[i]["in"]][-1:] or \
                [r for r in before if math.prod(r["shape"]) == math.prod(rows[i]["in"].shape[1:])][-1:]
    if not pick:
        return ""
    same = [r for r in rows if r["out"] is pick[0]["out"]]
    return min(same, key=lambda r: (len(r["name"]), r["name"]))["name"]


def _flatten_spatial(x):
    """(B, C, H, W) → (B, C) and (B, L, D) → (B, D) by averaging; flat stays flat."""
    return x.mean(dim=tuple(range(2, x.dim()))) if x.dim() == 4 else x.mean(dim=1) if x.dim() == 3 else x


class PairMatcher(nn.Module):
    """Brings one (student, teacher) feature pair to comparable shapes; holds the adapter, if any."""

    def __init__(self, s_name: str, s_shape: tuple, t_name: str, t_shape: tuple, method):
        super().__init__()
        self.s_name, self.t_name, self.s_shape, self.t_shape = s_name, t_name, s_shape, t_shape
        self.mode = "flat"   # relations: compare flattened samples, any sizes
        self.adapter: nn.Module | None = None
        where = f"student layer '{s_name}' {_shape(s_shape)} and teacher layer '{t_name}' {_shape(t_shape)}"
        if getattr(method, "needs_4d", False) and (len(s_shape) != 3 or len(t_shape) != 3):
            raise ConfigError(f"Method '{_name(method)}' needs 4-D features (B, C, H, W), but the {where}; "
                              "pick convolutional layers.", key="distill.student_layers")
        if getattr(method, "spatial", False):
            self.mode = "spatial"
        elif getattr(method, "elementwise", False):
            s_in, t_out = self._plan(s_shape, t_shape)
            if s_in != t_out:
                n = s_in * t_out
                if n > MAX_ADAPTER_PARAMS:
                    raise ConfigError(f"Matching the {where} needs an adapter of {n:,} weights; pick layers with "
                                      "fewer features (e.g. after pooling).", key="distill.student_layers")
                self.adapter = (nn.Conv2d(s_in, t_out, 1) if self.mode == "conv"
                                else nn.Linear(s_in, t_out))

    def _plan(self, s_shape, t_shape):
        if len(s_shape) == len(t_shape) == 3:
            self.mode = "conv"
            return s_shape[0], t_shape[0]
        if len(s_shape) == len(t_shape) == 2:
            self.mode = "tokens"
            return s_shape[1], t_shape[1]
        if len(s_shape) in (1, 2, 3) and len(t_shape) in (1, 2, 3):
            self.mode = "vector"  # reduce any spatial/token axes of either side, then a linear adapter
            return s_shape[0] if len(s_shape) == 3 else s_shape[-1], t_shape[0] if len(t_shape) == 3 else t_shape[-1]
        self.mode = "flatten"
        return math.prod(s_shape), math.prod(t_shape)

    def forward(self, s, t):
        """(matched student feature, matched teacher feature), both fp32."""
        s, t = s.float(), t.float()
        if self.mode in ("spatial", "conv"):
            hw = (min(s.shape[2], t.shape[2]), min(s.shape[3], t.shape[3]))
            s = s if tuple(s.shape[2:]) == hw else F.adaptive_avg_pool2d(s, hw)
            t = t if tuple(t.shape[2:]) == hw else F.adaptive_avg_pool2d(t, hw)
        elif self.mode == "tokens":
            n = min(s.shape[1], t.shape[1])
            s = s if s.shape[1] == n else F.adaptive_avg_pool1d(s.transpose(1, 2), n).transpose(1, 2)
            t = t if t.shape[1] == n else F.adaptive_avg_pool1d(t.transpose(1, 2), n).transpose(1, 2)
        elif self.mode == "vector":
            s, t = _flatten_spatial(s), _flatten_spatial(t)
        elif self.mode == "flatten":
            s, t = s.reshape(len(s), -1), t.reshape(len(t), -1)
        if self.adapter is not None:
            s = self.adapter(s).float()
        return s, t


def _name(method) -> str:
    return getattr(method, "registry_name", type(method).__name__.lower())


class FeatureMatcher(nn.Module):
    """Hooks on both models plus one PairMatcher per layer pair; calling it returns the matched feature lists."""

    def __init__(self, student: nn.Module, teacher: nn.Module, pairs: list[PairMatcher]):
        super().__init__()
        self.pairs = nn.ModuleList(pairs)
        self.student_hooks = FeatureHooks(student, [p.s_name for p in pairs], "student")
        self.teacher_hooks = FeatureHooks(teacher, [p.t_name for p in pairs], "teacher")
        self._seen: tuple | None = None

    def forward(self):
        """Matched (student_feats, teacher_feats) from the latest forward passes of both models.

        May be called more than once per forward pass (mixup calls the objective twice). Raises RuntimeError
        when the student ran again but the teacher did not (teacher outputs cached or skipped): its features
        would belong to another batch.
        """
        s_out, t_out = self.student_hooks.out, self.teacher_hooks.out
        missing = [f"student '{p.s_name}'" for p in self.pairs if p.s_name not in s_out]
        missing += [f"teacher '{p.t_name}'" for p in self.pairs if p.t_name not in t_out]
        s_calls, t_calls = dict(self.student_hooks.calls), dict(self.teacher_hooks.calls)
        if not missing and self._seen is not None and s_calls != self._seen[0] and t_calls == self._seen[1]:
            missing = ["the teacher (it did not run since the last step)"]
        if missing:
            raise RuntimeError(f"No fresh features from {', '.join(missing)}: run the student and the teacher "
                               "forward (teacher-output cache off) before each call of the objective.")
        self._seen = (s_calls, t_calls)
        ss, ts = [], []
        for p in self.pairs:
            t = t_out[p.t_name]
            if t.is_inference():  # captured under torch.inference_mode(): copy so autograd may save it
                t = t.clone()
            s, t = p(s_out[p.s_name], t.detach())
            ss.append(s)
            ts.append(t)
        return ss, ts

    def clear(self) -> None:
        """Drop captured features (frees the student graph held by them)."""
        self.student_hooks.clear()
        self.teacher_hooks.clear()
        self._seen = None

    def remove(self) -> None:
        """Unhook both models (do this before exporting the student)."""
        self.student_hooks.remove()
        self.teacher_hooks.remove()

    def describe(self) -> list[str]:
        """One line per pair: layers, shapes and the adapter."""
        out = []
        for p in self.pairs:
            ad = f", adapter {type(p.adapter).__name__}" if p.adapter is not None else ""
            out.append(f"student '{p.s_name}' {_shape(p.s_shape)} ↔ teacher '{p.t_name}' {_shape(p.t_shape)}{ad}")
        return out


def build_matcher(student: nn.Module, teacher: nn.Module, student_layers: list[str], teacher_layers: list[str],
                  method, example_input) -> FeatureMatcher:
    """Check the layer pairs on one example batch, create adapters and register the hooks."""
    name = _name(method)
    check_accessible(teacher, "teacher", name)
    check_accessible(student, "student", name)
    if len(student_layers) != len(teacher_layers):
        raise ConfigError(f"distill.student_layers has {len(student_layers)} names and distill.teacher_layers "
                          f"{len(teacher_layers)}; give one teacher layer per student layer.",
                          key="distill.teacher_layers")
    four_d = getattr(method, "needs_4d", False)
    if not student_layers:  # automatic: last feature maps for at (and fitnet when both have them), else embeddings
        maps = four_d or getattr(method, "elementwise", False)
        student_layers = [suggest_layer(student, example_input, maps)]
        teacher_layers = [suggest_layer(teacher, example_input, maps)]
        if maps and not four_d and not (student_layers[0] and teacher_layers[0]):
            student_layers = [suggest_layer(student, example_input)]
            teacher_layers = [suggest_layer(teacher, example_input)]
        if not student_layers[0] or not teacher_layers[0]:
            raise ConfigError(f"Method '{name}' needs 4-D (B, C, H, W) features, and the "
                              f"{'student' if not student_layers[0] else 'teacher'} has no such layer; pick "
                              "another method or models with convolutional layers.", key="distill.method")
    for n in student_layers:
        resolve(student, n, "student")
    for n in teacher_layers:
        resolve(teacher, n, "teacher")
    s_info = _dry_run(student, list(student_layers), example_input, "student")
    t_info = _dry_run(teacher, list(teacher_layers), example_input, "teacher")
    pairs = [PairMatcher(s, s_info[s], t, t_info[t], method) for s, t in zip(student_layers, teacher_layers)]
    matcher = FeatureMatcher(student, teacher, pairs)
    p = next(student.parameters(), None)
    if p is not None:
        matcher.to(p.device)
    return matcher
