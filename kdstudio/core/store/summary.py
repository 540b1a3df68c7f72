"""summary.json: one schema, written in one place and read back through the same place (resume, eval, the GUI).

A run's headline results: status and times, the device, one entry per model (teacher, student, baseline), the
distillation stage's speed, the compression variants, the evaluation table with the ratios against the teacher
(computed once, here), the KD gain and its paired test (`kd_gain_stats`: interval, p-value; added in schema 2 as
an optional table, so older readers ignore it and older files read as "not measured"), the exports — of every
export of the run: one entry per file, failures kept per format, weights and folder (`merge_exports`,
`merge_export_failed`; the entries' shape is unchanged, so schema 2 stays). Torch-free, so the window can read
every run before torch loads.

The file is strict JSON: NaN and infinities are written as null. Reading validates types; a damaged or foreign
file raises SummaryError with one sentence naming the run folder and what is wrong.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import KDError

SCHEMA_VERSION = 2
STATUSES = ("running", "completed", "stopped", "failed")
GAIN_NUMBERS = ("n", "gain", "low", "high", "confidence", "p", "better", "worse", "std")


class SummaryError(KDError):
    """summary.json cannot be read as a run summary."""


def _finite(v):
    """NaN/inf become None, recursively: summary.json is strict JSON."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def ratio(reference, value) -> float | None:
    """reference / value, or None when either is missing or not finite, or value is not positive (the one ratio
    rule: the evaluation table's ratios and the summary's use it)."""
    numbers = isinstance(reference, (int, float)) and isinstance(value, (int, float))
    if not numbers or not math.isfinite(reference) or not math.isfinite(value) or value <= 0:
        return None
    return float(reference) / float(value)


def ratio_said(x, more: str, less: str) -> str:
    """A teacher/student ratio said the right way round: 10.5 → '10.5× fewer parameters' (more = "fewer
    parameters"), 0.48 → '2.1× more parameters' (less), never '0.5× fewer'; '' when there is no ratio."""
    if not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
        return ""
    if x >= 0.995:  # what rounds to 1.0× reads as `more`, not as "1.0× more"
        return f"{x:.1f}× {more}"
    return f"{1 / x:.1f}× {less}"


def larger_student_warning(teacher_params, student_params) -> str | None:
    """The warning for a student with more parameters than its teacher (distillation then compresses nothing);
    None otherwise."""
    if not (isinstance(teacher_params, int) and isinstance(student_params, int)) or teacher_params <= 0 \
            or student_params <= teacher_params:
        return None
    return (f"The student has {ratio_said(teacher_params / student_params, '', 'more parameters')} than its teacher "
            f"({student_params:,} vs {teacher_params:,}), so distillation makes no smaller model; choose a smaller "
            "student (student.width, student.depth or another student.arch) or a larger teacher.")


_NUM = (int, float)


def _typed(where: str, key: str, value, types, default=None):
    if value is None:
        return default
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise SummaryError(f"{where}: '{key}' must be {_kind(types)}, not {value!r}.")
    if not isinstance(value, types):
        raise SummaryError(f"{where}: '{key}' must be {_kind(types)}, not {str(value)[:40]!r}.")
    return value


def _kind(types) -> str:
    names = {int: "a number", float: "a number", str: "a text", bool: "true or false", dict: "a table",
             list: "a list"}
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


@dataclass
class ModelEntry:
    """One model's results (teacher, student or baseline)."""

    arch: str | None = None
    params: int | None = None
    accuracy: float | None = None
    val_accuracy: float | None = None
    top5: float | None = None
    ece: float | None = None
    flops: int | None = None
    bytes: int | None = None
    teacher_agreement: float | None = None
    latency_ms: dict[str, float | None] = field(default_factory=dict)  # cpu_b1, cpu_b64, cuda_b1, ...
    source: str | None = None          # teacher: "train" or "file"
    sanity: dict | None = None         # teacher: the sanity check
    wall_s: float | None = None        # baseline: training time
    trained_by: str | None = None      # the stage that made it ("teacher", "distill", "baseline")
    reused_from: str | None = None     # teacher, baseline: the run that trained it, when this run reused it
    stored_id: str | None = None       # teacher: its id in the project's teachers/ store

    _TYPES = {"arch": str, "params": int, "accuracy": _NUM, "val_accuracy": _NUM, "top5": _NUM, "ece": _NUM,
              "flops": int, "bytes": int, "teacher_agreement": _NUM, "source": str, "sanity": dict,
              "wall_s": _NUM, "trained_by": str, "reused_from": str, "stored_id": str}

    def to_json(self) -> dict:
        """The file's form: latency flattened as latency_ms_<key> (the contract since schema 1)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "latency_ms":
                out.update({f"latency_ms_{k}": x for k, x in v.items()})
            elif v is not None:
                out[f.name] = v
        return out

    @classmethod
    def from_json(cls, raw, where: str) -> "ModelEntry | None":
        """Validate and build; None for a missing entry."""
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise SummaryError(f"{where} must be a table of results, not {str(raw)[:40]!r}.")
        entry = cls()
        for key, value in raw.items():
            if key.startswith("latency_ms_"):
                entry.latency_ms[key[len("latency_ms_"):]] = _typed(where, key, value, _NUM)
            elif key in cls._TYPES:
                setattr(entry, key, _typed(where, key, value, cls._TYPES[key]))
        return entry


@dataclass
class StageTiming:
    """Speed of the distillation stage (or any student stage)."""

    epochs: int | None = None
    method: str | None = None
    samples_per_s: float | None = None
    wall_s: float | None = None
    teacher_cache: bool | None = None
    timed_epochs: float | None = None

    _TYPES = {"epochs": int, "method": str, "samples_per_s": _NUM, "wall_s": _NUM, "teacher_cache": bool,
              "timed_epochs": _NUM}

    def to_json(self) -> dict:
        """Plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, raw, where: str) -> "StageTiming | None":
        """Validate and build; None when missing."""
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise SummaryError(f"{where} must be a table, not {str(raw)[:40]!r}.")
        return cls(**{k: _typed(where, k, v, cls._TYPES[k]) for k, v in raw.items() if k in cls._TYPES})


def _list_of_tables(raw, where: str) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise SummaryError(f"{where} must be a list of tables.")
    return [dict(x) for x in raw]


@dataclass
class Summary:
    """The whole of summary.json."""

    status: str = "running"
    started: str | None = None
    resumed: str | None = None
    finished: str | None = None
    device: str | None = None
    data: dict | None = None                # {"name", "mode", "inputs", "preprocessing"}: how the inputs were read
    teacher: ModelEntry | None = None
    student: ModelEntry | None = None
    baseline: ModelEntry | None = None
    distill: StageTiming | None = None
    compress: dict | None = None            # {"steps": [...], "variants": [records]}
    evaluation: dict | None = None          # {"reference", "table", "detail"}
    compression: dict | None = None         # ratios of the student against the teacher (from the table)
    kd_gain: float | None = None            # student accuracy - baseline accuracy
    kd_gain_stats: dict | None = None       # its paired test over the test samples (outputs/gain.py)
    exports: list[dict] = field(default_factory=list)
    export_failed: list[dict] = field(default_factory=list)
    error: str | None = None
    schema_version: int = SCHEMA_VERSION

    MODELS = ("teacher", "student", "baseline")

    # ---- derived, computed once ----------------------------------------------------------------------
    def apply_evaluation(self, results: dict[str, dict], table: list[dict], gain_stats: dict | None = None,
                         detail_file: str = "evaluation.json"):
        """Fold an evaluation (per-model metrics, the comparison table, the KD gain's paired test) into the model
        entries; compute the ratios against the teacher and the KD gain, once, from the table."""
        for who in self.MODELS:
            r, entry = results.get(who), getattr(self, who)
            if r is None:
                continue
            if entry is None:
                entry = ModelEntry()
                setattr(self, who, entry)
            entry.accuracy, entry.top5, entry.ece = r["top1"], r.get("top5"), r.get("ece")
            entry.flops, entry.bytes, entry.params = r.get("flops"), r.get("bytes"), r.get("params")
            if who != "teacher":
                entry.teacher_agreement = r.get("agreement")
            entry.latency_ms = {"cpu_b1": None, **dict(r.get("latency_ms") or {})}
        self.evaluation = {"reference": "teacher", "table": table, "detail": detail_file}
        row = next((r for r in table if r.get("model") == "student"), None)
        self.compression = None
        if self.teacher and self.student and self.teacher.accuracy is not None and row is not None:
            self.compression = {
                "params_ratio": ratio(self.teacher.params, self.student.params),
                "size_ratio": row.get("size_ratio"), "flops_ratio": row.get("flops_ratio"),
                "accuracy_kept": self.student.accuracy - self.teacher.accuracy,
                "speedup_cpu_b1": None,
                **{f"speedup_{k}": v for k, v in (row.get("speedup") or {}).items()},
            }
        self.kd_gain = None
        if self.baseline and self.student and self.baseline.accuracy is not None and self.student.accuracy is not None:
            self.kd_gain = self.student.accuracy - self.baseline.accuracy
        self.kd_gain_stats = dict(gain_stats) if gain_stats and self.kd_gain is not None else None

    # ---- file form -----------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """The dict written to summary.json (strict JSON: no NaN)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in self.MODELS or f.name == "distill":
                out[f.name] = v.to_json() if v is not None else None
            elif f.name in ("resumed", "export_failed", "error", "compress", "data", "kd_gain_stats") and not v:
                continue
            else:
                out[f.name] = v
        return _finite(out)

    @classmethod
    def from_json(cls, raw, where: str = "summary.json") -> "Summary":
        """Validate a parsed summary.json; SummaryError (one sentence) for anything that is not one."""
        if not isinstance(raw, dict):
            raise SummaryError(f"{where} is not a run summary (expected a table, found {type(raw).__name__}).")
        version = raw.get("schema_version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION:
            raise SummaryError(f"{where} was written by a newer KD Studio (schema {version!r}); update KD Studio "
                               "to read it.")
        s = cls()
        status = raw.get("status", "running")
        if status not in STATUSES:
            raise SummaryError(f"{where}: status {str(status)[:40]!r} is not one of {', '.join(STATUSES)}.")
        s.status = status
        for key in ("started", "resumed", "finished", "device", "error"):
            setattr(s, key, _typed(where, key, raw.get(key), str))
        for who in cls.MODELS:
            setattr(s, who, ModelEntry.from_json(raw.get(who), f"{where}: '{who}'"))
        s.distill = StageTiming.from_json(raw.get("distill"), f"{where}: 'distill'")
        for key in ("data", "compress", "evaluation", "compression", "kd_gain_stats"):
            setattr(s, key, _typed(where, key, raw.get(key), dict))
        s.kd_gain = _typed(where, "kd_gain", raw.get("kd_gain"), _NUM)
        for key in GAIN_NUMBERS:  # the sentence formats these: a damaged one is said here, not raised there
            _typed(where, f"kd_gain_stats.{key}", (s.kd_gain_stats or {}).get(key), _NUM)
        if s.kd_gain_stats and not isinstance(s.kd_gain_stats.get("gain"), _NUM):
            raise SummaryError(f"{where}: 'kd_gain_stats' has no 'gain'; run `kdstudio eval` on the run to measure "
                               "it again.")
        s.exports = _list_of_tables(raw.get("exports"), f"{where}: 'exports'")
        s.export_failed = _list_of_tables(raw.get("export_failed"), f"{where}: 'export_failed'")
        return s


# ---- exports recorded across several exports -------------------------------------------------------------

def _resolved(path) -> str:
    """One spelling of a path (relative, `..` and symlinks resolved) so that the same file is one entry."""
    try:
        return str(Path(path).expanduser().resolve())
    except (OSError, RuntimeError, TypeError, ValueError):
        return str(path)


def merge_exports(old: list[dict], new: list[dict]) -> list[dict]:
    """The files of every export so far, one entry per file: a file exported again replaces its entry."""
    by_path: dict[str, dict] = {}
    for e in [*old, *new]:
        key = _resolved(e.get("path", ""))
        by_path.pop(key, None)  # re-inserted last: the newest export of a file is listed last
        by_path[key] = e
    return list(by_path.values())


def merge_export_failed(old: list[dict], formats: list[str], quantize: str, out, failed: list[dict]) -> list[dict]:
    """The failures of every export so far, one per (format, weights, folder): this export's outcome replaces
    only the failures of the same format, weights and folder (an older entry without weights or folder counts
    as any), so a failure elsewhere stays listed."""
    here = _resolved(out)

    def replaced(f: dict) -> bool:
        return (f.get("format") in formats and f.get("quantize", quantize) == quantize
                and ("out" not in f or _resolved(f["out"]) == here))
    return [f for f in old if not replaced(f)] + list(failed)


def dumps(summary: Summary) -> str:
    """summary.json's text (strict JSON, indented)."""
    return json.dumps(summary.to_json(), indent=2, allow_nan=False) + "\n"


def _no_constants(name: str):
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str, where: str = "summary.json") -> Summary:
    """Parse summary.json text (strict JSON) through the schema."""
    try:
        raw = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:
        raise SummaryError(f"{where} is damaged ({str(e)[:80]}); the run's other files are intact.") from None
    return Summary.from_json(raw, where)


def write(path: Path, summary: Summary) -> None:
    """Write summary.json atomically."""
    from .files import atomic_write_text
    atomic_write_text(Path(path), dumps(summary))


def read(path: Path) -> Summary | None:
    """summary.json through the schema; None when the file does not exist; SummaryError when it is damaged."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise SummaryError(f"Cannot read '{path}' ({e}).") from None
    return loads(text, str(path))


def read_dict(path: Path, default=None):
    """summary.json validated and normalised, as the plain dict readers index (default when missing or damaged)."""
    try:
        s = read(path)
    except SummaryError:
        return default
    return default if s is None else s.to_json()
