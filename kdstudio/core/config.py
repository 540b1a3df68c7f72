"""The run configuration: schema with defaults, validation, TOML load/save, `--set key.path=value` overrides.

Every field has a default. Field metadata carries what validation needs (choices, bounds, which choices are
implemented). The schema is plain dataclasses so the GUI can build forms from it and the CLI can print it.
"""

from __future__ import annotations

import difflib
import math
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

from .errors import ConfigError, NotAvailableYet


def opt(default, help: str = "", *, choices=None, available=None, min=None, max=None, min_open=False,
        max_open=False):
    """A schema field: default value plus validation metadata."""
    meta = {"help": help, "choices": choices, "available": available, "min": min, "max": max,
            "min_open": min_open, "max_open": max_open}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    source: str = opt("digits", "where the data comes from",
                      choices=("digits", "tensors", "folder", "csv", "synthetic"))
    path: str = opt("", "file or folder for the tensors/folder/csv sources")
    val_path: str = opt("", "separate validation file/folder (empty = cut val_fraction from path)")
    test_path: str = opt("", "separate test file/folder (empty = cut test_fraction from path)")
    skip_unreadable: bool = opt(False, "folder: skip unreadable images with a warning instead of stopping")
    val_fraction: float = opt(0.15, "fraction of the data held out for validation", min=0.0, max=1.0, max_open=True)
    test_fraction: float = opt(0.2, "fraction of the data held out for the final test", min=0.0, max=1.0,
                               max_open=True)
    batch_size: int = opt(64, "samples per training step", min=1)
    augment: str = opt("none", "random augmentation of training inputs (turns the teacher cache off)",
                       choices=("none", "shift", "crop", "crop_flip"))
    image_size: int = opt(0, "resize images to this size (0 = keep)", min=0)
    normalize: str = opt("auto", "input normalisation", choices=("auto", "none", "imagenet"))
    mean: list = opt([], "explicit per-channel mean (overrides normalize)")
    std: list = opt([], "explicit per-channel std (overrides normalize)")
    class_names: list = opt([], "the teacher's classes in its output order (optional)")
    label_column: str = opt("label", "CSV: name of the label column")
    synthetic_samples: int = opt(2048, "synthetic: number of samples", min=16)
    synthetic_classes: int = opt(10, "synthetic: number of classes", min=2)
    synthetic_channels: int = opt(3, "synthetic: image channels", min=1)
    synthetic_size: int = opt(32, "synthetic: image height and width", min=4)


@dataclass
class TeacherConfig:
    source: str = opt("train", "train the teacher here, or load it from a file", choices=("train", "file"))
    arch: str = opt("cnn", "teacher arch: zoo name, torchvision:NAME, timm:NAME, or file.py:factory (runs that file)")
    path: str = opt("", "teacher model file when source = \"file\"")
    width: int = opt(0, "architecture width knob (0 = the arch's default)", min=0)
    depth: int = opt(0, "architecture depth knob (0 = the arch's default)", min=0)
    epochs: int = opt(20, "training epochs when source = \"train\"", min=1)
    lr: float = opt(2e-3, "learning rate for teacher training", min=0.0, min_open=True)
    trust_pickle: bool = opt(False, "load a pickled full model from teacher.path (runs code from that file)")
    finetune_layers: int = opt(0, "fine-tune a loaded teacher: train only its last N layers (0 = off)", min=0)
    finetune_epochs: int = opt(5, "fine-tuning epochs (learning rate: teacher.lr)", min=1)
    skip_sanity_check: bool = opt(False, "go on even if the teacher scores near chance on the validation split")
    extra_paths: list = opt([], "more teacher files: their softened outputs are averaged with the first teacher's")
    weights: list = opt([], "weight of each teacher in the average (empty = equal weights)")


@dataclass
class StudentConfig:
    arch: str = opt("mlp", "student arch: zoo name, \"teacher\" (its family), or file.py:factory (runs that file)")
    width: int = opt(0, "architecture width knob (0 = the arch's default)", min=0)
    depth: int = opt(0, "architecture depth knob (0 = the arch's default)", min=0)
    width_mult: float = opt(1.0, "scale the width (arch \"teacher\" = the teacher's family)", min=0.0, min_open=True)
    depth_mult: float = opt(1.0, "scale the depth (rounded to a valid depth)", min=0.0, min_open=True)


@dataclass
class DistillConfig:
    method: str = opt("kd", "distillation method", choices=None)
    temperature: float = opt(4.0, "softmax temperature T", min=0.0, min_open=True)
    alpha: float = opt(0.9, "weight of the distillation term (1 - alpha weights cross-entropy)", min=0.0, max=1.0)
    epochs: int = opt(30, "distillation epochs (the baseline gets the same budget)", min=1)
    lr: float = opt(2e-3, "learning rate", min=0.0, min_open=True)
    optimizer: str = opt("adamw", "optimizer", choices=("adamw", "adam", "sgd"))
    weight_decay: float = opt(1e-4, "weight decay", min=0.0)
    scheduler: str = opt("cosine", "learning-rate schedule", choices=("cosine", "step", "constant"))
    amp: bool = opt(True, "mixed precision where the device supports it (bf16, else fp16); losses stay fp32")
    mixup: float = opt(0.0, "mixup Beta(a, a) strength for distillation inputs (0 = off)", min=0.0)
    cache_teacher: bool = opt(True, "compute teacher outputs once when inputs are deterministic")
    compile: bool = opt(False, "torch.compile the student (slow start, faster steps on GPU)")
    log_every: int = opt(20, "read step metrics from the device every k steps", min=1)
    params: dict = opt({}, "method-specific parameters")
    feature_method: str = opt("", "feature method added to the logit method: fitnet, at, rkd, sp, pkt (\"\" = none)")
    feature_params: dict = opt({}, "parameters of feature_method, e.g. { weight = 1.0 }")
    student_layers: list = opt([], "student layers (module paths) to match, paired in order with teacher_layers; "
                                   "[] = automatic")
    teacher_layers: list = opt([], "teacher layers (module paths) to match; [] = automatic")


@dataclass
class BaselineConfig:
    enabled: bool = opt(True, "train the same student from scratch with the same budget, for comparison")


@dataclass
class CompressConfig:
    finetune_epochs: int = opt(0, "fine-tune the student on hard labels after distillation (0 = off)", min=0)
    finetune_lr: float = opt(1e-4, "learning rate of every compression fine-tune (low)", min=0.0, min_open=True)
    prune: float = opt(0.0, "global magnitude pruning: fraction of weights set to zero (0 = off)", min=0.0, max=1.0,
                       max_open=True)
    channel_prune: float = opt(0.0, "conv nets: fraction of channels removed per conv layer (0 = off)", min=0.0,
                               max=1.0, max_open=True)
    prune_finetune_epochs: int = opt(2, "fine-tune epochs after each pruning step", min=0)
    prune_finetune_lr: float = opt(1e-3, "learning rate of the fine-tune after pruning (recovery needs more than "
                                         "finetune_lr)", min=0.0, min_open=True)
    int8: str = opt("none", "int8 variant: auto = static for conv nets, dynamic (Linear layers) otherwise",
                    choices=("none", "auto", "dynamic", "static"))
    half: str = opt("none", "half-precision weights variant", choices=("none", "fp16", "bf16"))
    calibration_samples: int = opt(512, "training samples used to calibrate static int8", min=1)


@dataclass
class EvaluateConfig:
    latency_repeats: int = opt(30, "timed forward passes per latency figure (median; 0 = skip latency)", min=0)
    cpu_threads: int = opt(0, "CPU threads while timing latency (0 = PyTorch's default)", min=0)


@dataclass
class ExportConfig:
    formats: list = opt(["torchscript", "state_dict"], "export formats",
                        choices=("torchscript", "state_dict", "onnx", "safetensors"))
    quantize: str = opt("none", "export quantized/half weights", choices=("none", "int8", "fp16", "bf16"))
    model: str = opt("auto", "what to export: auto = last float compression variant, else the student",
                     choices=("auto", "student", "finetune", "prune", "channels"))


@dataclass
class RunConfig:
    seeds: list = opt([], "run the pipeline once per seed and report mean ± std, e.g. [0, 1, 2] ([] = seed)")
    sweep: dict = opt({}, "grid over numeric settings, e.g. { \"distill.temperature\" = [2, 4] }")


@dataclass
class Config:
    seed: int = opt(0, "random seed for splits, initialisation and batching")
    device: str = opt("auto", "\"auto\", \"cpu\", \"cuda\", \"cuda:N\" or \"mps\"")
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    run: RunConfig = field(default_factory=RunConfig)

    # ---- conversion -------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain nested dict (TOML-ready)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if _is_section(f):
                out[f.name] = {sf.name: _copy(getattr(v, sf.name)) for sf in fields(v)}
            else:
                out[f.name] = _copy(v)
        return out

    @classmethod
    def from_dict(cls, raw: dict, *, where: str = "config") -> "Config":
        """Build a config from a nested dict; unknown keys and wrong types raise ConfigError."""
        cfg = cls()
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a table of settings.")
        top = {f.name: f for f in fields(cls)}
        for key, value in raw.items():
            if key not in top:
                raise ConfigError(_unknown(key, list(top) + _all_dotted(cls)), key=key)
            f = top[key]
            if _is_section(f):
                if not isinstance(value, dict):
                    raise ConfigError(f"[{key}] must be a table, like [{key}] on its own line.", key=key)
                section = getattr(cfg, key)
                sfields = {sf.name: sf for sf in fields(section)}
                for skey, svalue in value.items():
                    dotted = f"{key}.{skey}"
                    if skey not in sfields:
                        names = [f"{key}.{n}" for n in sfields] + _all_dotted(cls)
                        raise ConfigError(_unknown(dotted, names), key=dotted)
                    setattr(section, skey, _coerce(dotted, sfields[skey], svalue))
            else:
                setattr(cfg, key, _coerce(key, f, value))
        return cfg

    def get(self, dotted: str) -> Any:
        """Value at `section.key` (or a top-level key)."""
        obj: Any = self
        for part in dotted.split("."):
            obj = getattr(obj, part)
        return obj

    def set(self, dotted: str, value: Any) -> None:
        """Set `section.key` with type checking; a string is parsed as a TOML value when it looks like one."""
        f, owner, name = _field_for(self, dotted)
        if isinstance(value, str) and (f.type not in ("str", str) or value[:1] in "\"'" and len(value) > 1):
            value = parse_value(value)  # numbers, lists, booleans, and quoted strings as TOML writes them
        setattr(owner, name, _coerce(dotted, f, value))

    def copy(self) -> "Config":
        """A deep copy."""
        return Config.from_dict(self.to_dict())


# ---- helpers ---------------------------------------------------------------------------------------------

def _is_section(f) -> bool:
    return f.name in SECTIONS


SECTIONS = ("data", "teacher", "student", "distill", "baseline", "compress", "evaluate", "export", "run")


def _copy(v):
    return list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v


def _all_dotted(cls=Config) -> list[str]:
    names = []
    for f in fields(cls):
        if _is_section(f):
            names += [f"{f.name}.{sf.name}" for sf in fields(f.default_factory())]
        else:
            names.append(f.name)
    return names


def all_keys() -> list[str]:
    """Every public dotted key of the schema."""
    return _all_dotted(Config)


def field_info(dotted: str):
    """The dataclass field behind a dotted key (for help texts and choices)."""
    return _field_for(Config(), dotted)[0]


def _field_for(cfg: Config, dotted: str):
    parts = dotted.split(".")
    owner: Any = cfg
    for part in parts[:-1]:
        if part not in SECTIONS:
            raise ConfigError(_unknown(dotted, all_keys()), key=dotted)
        owner = getattr(owner, part)
    name = parts[-1]
    match = {f.name: f for f in fields(owner)}
    if name not in match or (len(parts) == 1 and name in SECTIONS):
        raise ConfigError(_unknown(dotted, all_keys()), key=dotted)
    return match[name], owner, name


def _unknown(key: str, candidates: list[str]) -> str:
    near = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    if not near:  # try the last part alone, e.g. "distil.temprature" -> "distill.temperature"
        last = key.split(".")[-1]
        near = [c for c in candidates if difflib.get_close_matches(last, [c.split(".")[-1]], n=1, cutoff=0.7)][:1]
    hint = f" Did you mean '{near[0]}'?" if near else " Run `kdstudio init` to see every valid key."
    return f"Unknown setting '{key}'.{hint}"


_TYPE_NAMES = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "a text in quotes",
               "list": "a list like [1, 2]", "dict": "a table"}


def _coerce(key: str, f, value):
    t = f.type if isinstance(f.type, str) else f.type.__name__
    ok = {
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "list": isinstance(value, list),
        "dict": isinstance(value, dict),
    }[t]
    if not ok:
        raise ConfigError(f"'{key}' must be {_TYPE_NAMES[t]}, not {value!r}.", key=key)
    if t == "float":
        value = float(value)
    return value


def parse_value(text: str):
    """Parse one TOML value (`3`, `0.5`, `true`, `"x"`, `[1, 2]`); bare words stay strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


# ---- validation ------------------------------------------------------------------------------------------

def problems(cfg: Config) -> list[tuple[str, str]]:
    """Every problem as (dotted key, one-sentence message); empty when the config is valid."""
    out: list[tuple[str, str]] = []
    for f in fields(cfg):
        if _is_section(f):
            section = getattr(cfg, f.name)
            for sf in fields(section):
                msg = _check_field(f"{f.name}.{sf.name}", sf, getattr(section, sf.name))
                if msg:
                    out.append((f"{f.name}.{sf.name}", msg))
        else:
            msg = _check_field(f.name, f, getattr(cfg, f.name))
            if msg:
                out.append((f.name, msg))
    d = cfg.data
    if d.val_fraction + d.test_fraction >= 1:
        out.append(("data.test_fraction",
                    f"data.val_fraction + data.test_fraction is {d.val_fraction + d.test_fraction:g}; "
                    "it must be below 1 so that data is left for training."))
    dev = cfg.device
    if not (dev in ("auto", "cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        out.append(("device", f"device '{dev}' is not valid; use auto, cpu, cuda, cuda:N or mps."))
    if d.source in ("tensors", "folder", "csv") and not d.path:
        out.append(("data.path", f"data.source = \"{d.source}\" needs data.path; set it to your data."))
    if cfg.teacher.source == "file" and not cfg.teacher.path:
        out.append(("teacher.path", "teacher.source = \"file\" needs teacher.path; choose the teacher file."))
    c, wanted = cfg.compress, cfg.export.model
    steps = {"finetune": c.finetune_epochs > 0, "prune": c.prune > 0, "channels": c.channel_prune > 0}
    if wanted in steps and not steps[wanted]:
        out.append(("export.model", f"export.model = \"{wanted}\" but that compression step is off; turn it on "
                                    "in [compress] or use export.model = \"auto\"."))
    out += _external_problems(cfg)
    return out


# Other modules (losses, models) register checks here so the config stays free of torch imports.
EXTERNAL_CHECKS: list = []


def _external_problems(cfg: Config) -> list[tuple[str, str]]:
    out = []
    for check in EXTERNAL_CHECKS:
        out += check(cfg)
    return out


def _check_field(key: str, f, value) -> str | None:
    m = f.metadata
    if m.get("choices"):
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v not in m["choices"]:
                near = difflib.get_close_matches(str(v), [str(c) for c in m["choices"]], n=1, cutoff=0.4)
                hint = f" Did you mean '{near[0]}'?" if near else ""
                return f"'{key}' = {v!r} is not one of {', '.join(m['choices'])}.{hint}"
            if m.get("available") and v not in m["available"]:
                return (f"'{key}' = {v!r} is not available yet in this version of KD Studio; "
                        f"use one of {', '.join(m['available'])}.")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return f"'{key}' must be a finite number, not {value}."
        lo, hi = m.get("min"), m.get("max")
        if lo is not None and (value < lo or (m.get("min_open") and value <= lo)):
            return f"'{key}' = {value:g} is too small; it must be {'above' if m.get('min_open') else 'at least'} {lo:g}."
        if hi is not None and (value > hi or (m.get("max_open") and value >= hi)):
            return f"'{key}' = {value:g} is too large; it must be {'below' if m.get('max_open') else 'at most'} {hi:g}."
    return None


def validate(cfg: Config) -> Config:
    """Raise ConfigError (or NotAvailableYet) for the first problem; return the config when it is valid."""
    found = problems(cfg)
    if found:
        key, msg = found[0]
        if "not available yet" in msg:
            raise NotAvailableYet(msg)
        raise ConfigError(msg, key=key)
    return cfg


# ---- TOML ------------------------------------------------------------------------------------------------

def loads(text: str, *, where: str = "config") -> Config:
    """Parse TOML text into a Config (not yet validated)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: TOML syntax error: {e}. Fix that line and try again.") from None
    return Config.from_dict(raw, where=where)


def load(path: str | Path) -> Config:
    """Read a TOML config file (not yet validated)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Config file '{p}' does not exist; check the path or create one with `kdstudio init`.")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"Cannot read config file '{p}': {e}.") from None
    return loads(text, where=str(p))


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(k)


def dumps(cfg: Config, *, comments: bool = False) -> str:
    """TOML text of the whole config; with comments=True each key carries its help text."""
    d = cfg.to_dict()
    lines: list[str] = []
    sections = {f.name: f for f in fields(Config)}

    def emit(key, value, f):
        line = f"{key} = {_toml_value(value)}"
        if comments and f.metadata.get("help"):
            extra = f" ({' | '.join(f.metadata['choices'])})" if f.metadata.get("choices") else ""
            line = f"{line:<40} # {f.metadata['help']}{extra}"
        lines.append(line)

    for name, f in sections.items():
        if not _is_section(f):
            emit(name, d[name], f)
    for name, f in sections.items():
        if _is_section(f):
            lines.append("")
            lines.append(f"[{name}]")
            for sf in fields(f.default_factory()):
                emit(sf.name, d[name][sf.name], sf)
    return "\n".join(lines) + "\n"


def save(cfg: Config, path: str | Path, *, comments: bool = False) -> None:
    """Write the config as TOML, atomically."""
    from .store import atomic_write_text
    atomic_write_text(Path(path), dumps(cfg, comments=comments))

