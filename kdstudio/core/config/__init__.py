"""The run configuration: the Config object, validation, TOML load/save, `--set key.path=value` overrides.

Every field has a default (the sections live in schema.py). Field metadata carries what validation needs
(choices, bounds, which choices are implemented). Plain dataclasses, so the GUI can build forms from them and the
CLI can print them.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

from ..errors import ConfigError, NotAvailableYet
from ..registry import nearest
from . import methods as _methods, runs as _runs
from .schema import (  # noqa: F401  (re-exported: the sections are part of the config API)
    SOURCES, BaselineConfig, CompressConfig, DataConfig, DistillConfig, EvaluateConfig, ExportConfig, RunConfig,
    StudentConfig, TeacherConfig, TrackingConfig, opt,
)


@dataclass
class Config:
    seed: int = opt(0, "random seed for splits, initialisation and batching", min=0, max=2**32 - 1)
    device: str = opt("auto", "\"auto\", \"cpu\", \"cuda\", \"cuda:N\" or \"mps\"")
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
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
        given = raw.get("distill", {})
        for name in _methods.SHARED:  # not set: the method's own default, as the loss class would take it
            default = _methods.shared_default(cfg.distill.method, name)
            if name not in given and default is not None:
                setattr(cfg.distill, name, float(default))
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
        before = self.distill.method
        setattr(owner, name, _coerce(dotted, f, value))
        if dotted == "distill.method" and self.distill.method != before:
            self._follow_method(before)

    def _follow_method(self, before: str) -> None:
        """After a method change, temperature/alpha left at the old method's default take the new one's."""
        for name in _methods.SHARED:
            old = _methods.shared_default(before, name)
            old = field_info(f"distill.{name}").default if old is None else old
            new = _methods.shared_default(self.distill.method, name)
            if new is not None and getattr(self.distill, name) == old:
                setattr(self.distill, name, float(new))

    def copy(self) -> "Config":
        """A deep copy."""
        return Config.from_dict(self.to_dict())


# ---- helpers ---------------------------------------------------------------------------------------------

def _is_section(f) -> bool:
    return f.name in SECTIONS


SECTIONS = ("data", "teacher", "student", "distill", "baseline", "compress", "evaluate", "export", "tracking",
            "run")


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
    near = nearest(key, candidates)
    if not near:  # try the last part alone, e.g. "distil.temprature" -> "distill.temperature"
        last = key.split(".")[-1]
        near = next((c for c in candidates if nearest(last, [c.split(".")[-1]], cutoff=0.7)), None)
    hint = f" Did you mean '{near}'?" if near else " Run `kdstudio init` to see every valid key."
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
        message = (f"data.val_fraction + data.test_fraction is {d.val_fraction + d.test_fraction:g}; "
                   "it must be below 1 so that data is left for training.")
        out += [("data.val_fraction", message), ("data.test_fraction", message)]  # either field can be the fix
    if d.std and len(d.std) != len(d.mean):
        out.append(("data.std", f"data.std has {len(d.std)} value(s) but data.mean has {len(d.mean)}; give one mean "
                    "and one std per channel, or leave both empty."))
    if d.resize and not d.image_size:
        out.append(("data.resize", f"data.resize = {d.resize} resizes the shorter side before a centre crop of "
                    "data.image_size, which is 0; set data.image_size (e.g. 224 with resize 256) or data.resize = 0."))
    elif d.resize and d.resize < d.image_size:
        out.append(("data.resize", f"data.resize = {d.resize} is smaller than the crop data.image_size = "
                    f"{d.image_size}; resize to at least the crop size (e.g. 256 for a 224 crop)."))
    per_sample = ("rrc_flip", "randaugment", "trivialaugment")  # data.augment.SAMPLE_KINDS, without torch
    if d.augment in per_sample and (d.mode == "resident" or d.source in ("digits", "synthetic", "csv")):
        why = "data.mode = \"resident\"" if d.mode == "resident" else f"the {d.source} source is read whole"
        out.append(("data.augment", f"data.augment = \"{d.augment}\" augments each sample in the data workers of the "
                    f"streamed path, but {why}; set data.mode = \"streamed\" (image folders and .npy/.npz tensor "
                    "files), or use crop_flip, which runs on the device."))
    dev = cfg.device
    if not (dev in ("auto", "cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        out.append(("device", f"device '{dev}' is not valid; use auto, cpu, cuda, cuda:N or mps."))
    reads_path = d.source in SOURCES and SOURCES.meta(d.source)["needs_path"]
    if reads_path and not d.path:
        out.append(("data.path", f"data.source = \"{d.source}\" needs data.path; set it to your data."))
    if cfg.teacher.arch == "hf" and cfg.teacher.source == "train":
        out.append(("teacher.arch", "teacher.arch = \"hf\" loads a Hugging Face model folder; set teacher.source = "
                    "\"file\" and teacher.path to the folder, or pick an architecture to train here."))
    reuse = cfg.teacher.reuse
    if reuse not in ("auto", "never") and not re.fullmatch(r"[0-9a-f]{12}", str(reuse)):
        out.append(("teacher.reuse", f"teacher.reuse = {reuse!r} is not auto, never or a stored teacher's id (12 "
                                     "letters and digits, listed on the Teacher page)."))
    elif reuse not in ("auto", "never") and cfg.teacher.source != "train":
        out.append(("teacher.reuse", "teacher.reuse picks a stored teacher, which needs teacher.source = \"train\"; "
                                     "set teacher.reuse = \"auto\" to load teacher.path."))
    if cfg.teacher.source == "file" and not cfg.teacher.path:
        out.append(("teacher.path", "teacher.source = \"file\" needs teacher.path; choose the teacher file."))
    # Files that must exist are checked here, so the window marks the field and nothing starts (no failed run).
    if cfg.teacher.source == "file" and cfg.teacher.path and not Path(cfg.teacher.path).expanduser().exists():
        out.append(("teacher.path", f"Teacher file '{cfg.teacher.path}' does not exist; check teacher.path."))
    missing = [p for p in cfg.teacher.extra_paths if isinstance(p, str) and not Path(p).expanduser().exists()]
    if cfg.teacher.source == "file" and missing:
        out.append(("teacher.extra_paths", f"Teacher file '{missing[0]}' in teacher.extra_paths does not exist; "
                    "check the path."))
    for key in ("path", "val_path", "test_path"):
        value = getattr(d, key, "")
        if reads_path and value and not Path(value).expanduser().exists():
            out.append((f"data.{key}", f"data.{key} '{value}' does not exist; check the path."))
    c, wanted = cfg.compress, cfg.export.model
    steps = {"finetune": c.finetune_epochs > 0, "prune": c.prune > 0, "channels": c.channel_prune > 0}
    if wanted in steps and not steps[wanted]:
        out.append(("export.model", f"export.model = \"{wanted}\" but that compression step is off; turn it on "
                                    "in [compress] or use export.model = \"auto\"."))
    # Called directly, never registered on import, so the result does not depend on what was imported before.
    seen = {k for k, _ in out}  # a temperature the schema refuses is not said twice by the method's own check
    out += [(k, m) for k, m in _methods.problems(cfg) if k not in seen or k not in ("distill.temperature",
                                                                                   "distill.alpha")]
    out += _runs.problems(cfg, field_info=field_info, config_problems=problems)
    return out


_ITEM_TYPES = {"float": ((int, float), "numbers"), "str": ((str,), "texts in quotes")}


def _check_field(key: str, f, value) -> str | None:
    m = f.metadata
    if m.get("item") and isinstance(value, list):
        types, words = _ITEM_TYPES[m["item"]]
        bad = [v for v in value if not isinstance(v, types) or isinstance(v, bool)]
        if bad:
            return f"'{key}' must be a list of {words}; {bad[0]!r} is not."
    if m.get("choices"):
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v not in m["choices"]:
                near = nearest(v, m["choices"], cutoff=0.4)
                hint = f" Did you mean '{near}'?" if near else ""
                return f"'{key}' = {v!r} is not one of {', '.join(m['choices'])}.{hint}"
            if m.get("available") and v not in m["available"]:
                return (f"'{key}' = {v!r} is not available yet in this version of KD Studio; "
                        f"use one of {', '.join(m['available'])}.")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return f"'{key}' must be a finite number, not {value}."
        lo, hi = m.get("min"), m.get("max")
        num = lambda x: f"{x:,}" if isinstance(x, int) else f"{x:g}"  # noqa: E731 - whole numbers in full
        if lo is not None and (value < lo or (m.get("min_open") and value <= lo)):
            return (f"'{key}' = {num(value)} is too small; it must be "
                    f"{'above' if m.get('min_open') else 'at least'} {num(lo)}.")
        if hi is not None and (value > hi or (m.get("max_open") and value >= hi)):
            return (f"'{key}' = {num(value)} is too large; it must be "
                    f"{'below' if m.get('max_open') else 'at most'} {num(hi)}.")
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
    text = text[1:] if text.startswith("\ufeff") else text  # a BOM (Windows editors) is not TOML's business
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: TOML syntax error: {e}. Fix that line and try again.") from None
    return Config.from_dict(raw, where=where)


def load(path: str | Path) -> Config:
    """Read a TOML config file (not yet validated)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"Config path '{p}' is a folder; give the .toml file inside it (e.g. '{p}/kdstudio.toml').")
    if p.exists() and not p.is_file():
        raise ConfigError(f"Config path '{p}' is not a regular file (a pipe or device); give a .toml file.")
    if not p.is_file():
        raise ConfigError(f"Config file '{p}' does not exist; check the path or create one with `kdstudio init`.")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"Cannot read config file '{p}': {e}.") from None
    return loads(text, where=str(p))


def _toml_value(v) -> str:
    from .toml_edit import value_text  # tomlkit escapes every string (\r, \x01…), so any value reads back
    return value_text(v)


def dumps(cfg: Config, *, comments: bool = False) -> str:
    """TOML text of the whole config; with comments=True each key carries its help text."""
    from .toml_edit import dumps as _dumps
    return _dumps(cfg, comments=comments)


def save(cfg: Config, path: str | Path, *, comments: bool = False) -> None:
    """Write the config as TOML, atomically."""
    from ..store.files import atomic_write_text
    atomic_write_text(Path(path), dumps(cfg, comments=comments))

