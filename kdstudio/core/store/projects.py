"""Projects on disk, Qt-free: one folder per project with `project.toml` (its config) and `runs/`.

The store lives in `platformdirs.user_data_dir("kdstudio")/projects`, or `$KDSTUDIO_HOME/projects` when that
variable is set (tests, portable installs). App settings (window geometry, recent projects) live in
`platformdirs.user_config_dir("kdstudio")/settings.json`, or `$KDSTUDIO_HOME/settings.json`.

A project whose `project.toml` cannot be read is listed as damaged with the reason and is never overwritten by
autosave; only an explicit save of valid TOML text repairs it.
"""

from __future__ import annotations

import datetime as _dt
import re
import shutil
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .. import config as config_mod
from ..config import Config, toml_edit
from ..errors import ConfigError, KDError
from . import summary as summary_mod
from .files import RunDir, atomic_write_text, read_json
from .settings import data_dir

PROJECT_FILE = "project.toml"
RUNS = "runs"
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def projects_root() -> Path:
    """The folder that holds one sub-folder per project."""
    return data_dir() / "projects"


def sanitize_name(name: str) -> str:
    """A project name made safe as one folder name on every OS (letters, digits, space, - _ . kept)."""
    text = unicodedata.normalize("NFC", str(name)).strip()
    text = "".join(c if (c.isalnum() or c in " -_.()") else "_" for c in text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"[_.]{2,}", "_", text).strip(" ._")
    if not text or set(text) <= {"_", "."}:
        text = "Untitled"
    if text.split(".")[0].lower() in _RESERVED:
        text = f"_{text}"
    return text[:64].rstrip(" .")


@dataclass
class RunInfo:
    """One run folder of a project, with the headline of its summary.json."""

    path: Path
    status: str
    started: str = ""
    summary: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The run folder's name."""
        return self.path.name

    @property
    def is_sweep(self) -> bool:
        """True for a seeds/grid folder (sweep.json rows instead of one summary)."""
        return bool(self.summary.get("sweep"))

    def sub_runs(self) -> list[Path]:
        """The run folders of a sweep (point/seed-N), in the order they ran; [] for a single run."""
        if not self.is_sweep:
            return []
        runs = self.summary.get("runs") if isinstance(self.summary.get("runs"), list) else []
        listed = [Path(r["folder"]) for r in runs if isinstance(r, dict) and isinstance(r.get("folder"), str)]
        return listed or sorted(p.parent for p in Path(self.path).glob("*/seed-*/config.toml"))

    def headline(self) -> dict:
        """Test accuracy of teacher / student / baseline, KD gain with its test (outputs/gain.py) and compression
        (None where unknown). For a sweep: the means of its best point and its paired t-test over seeds."""
        s = self.summary
        if self.is_sweep:
            rows = s.get("rows") if isinstance(s.get("rows"), list) else []
            best = next((r for r in rows if isinstance(r, dict) and r.get("best")), None) or {}
            mean = lambda k: best[k].get("mean") if isinstance(best.get(k), dict) else None  # noqa: E731
            return {"teacher": mean("teacher"), "student": mean("student"), "baseline": mean("baseline"),
                    "kd_gain": mean("kd_gain"), "kd_gain_stats": _table(best.get("kd_gain_stats")),
                    "params_ratio": None, "speedup": None}
        acc = lambda k: (s.get(k) or {}).get("accuracy") if isinstance(s.get(k), dict) else None  # noqa: E731
        comp = s.get("compression") or {}
        return {"teacher": acc("teacher"), "student": acc("student"), "baseline": acc("baseline"),
                "kd_gain": s.get("kd_gain"), "kd_gain_stats": s.get("kd_gain_stats"),
                "params_ratio": comp.get("params_ratio"),
                "speedup": comp.get("speedup_cpu_b1")}


def _table(v) -> dict | None:
    """v when it is a table (sweep.json is read without a schema), else None."""
    return v if isinstance(v, dict) else None


@dataclass
class Project:
    """A project folder; `config` is None and `error` says why when project.toml cannot be read. `text` is the
    file as last read or written: saves edit it in place, so the user's comments and layout survive."""

    path: Path
    config: Config | None = None
    error: str | None = None
    text: str = field(default="", repr=False)

    @property
    def name(self) -> str:
        """The project's name (its folder name)."""
        return self.path.name

    @property
    def file(self) -> Path:
        """Its project.toml."""
        return self.path / PROJECT_FILE

    @property
    def runs_dir(self) -> Path:
        """Its runs/ folder."""
        return self.path / RUNS

    @property
    def damaged(self) -> bool:
        """True when project.toml could not be read."""
        return self.error is not None

    def reload(self) -> "Project":
        """Read project.toml again; a damaged file sets `error` and clears `config`."""
        try:
            self.text = self.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or e
            self.config, self.text, self.error = None, "", f"Cannot read '{self.file}': {reason}."
            return self
        try:
            self.config, self.error = config_mod.loads(self.text, where=str(self.file)), None
        except ConfigError as e:
            self.config, self.error = None, str(e)
        return self

    def text_for(self, cfg: Config) -> str:
        """project.toml as it would be after saving `cfg`: only changed values rewritten, comments and layout kept."""
        return toml_edit.update(self.text, cfg)

    def save(self, cfg: Config) -> None:
        """Write the config atomically, in place in the file's own layout (refused for a damaged project: use
        save_text to repair it)."""
        if self.damaged:
            raise KDError(f"Project '{self.name}' has a damaged project.toml; it is not overwritten. "
                          "Fix it in the TOML editor or in a text editor.")
        if self.text and not self.path.is_dir():  # deleted behind the app's back: saving must not bring it back
            raise KDError(f"Project '{self.name}' was deleted outside KD Studio ('{self.path}' is gone); it is not "
                          "re-created. Create a new project to keep these settings.")
        base = self.config
        outside = self._take_outside_edits()
        if outside is not None and base is not None:  # changed on disk meanwhile: keep its changes, add ours
            cfg = merge_edits(base, cfg, outside)
        text = self.text_for(cfg)
        atomic_write_text(self.file, text)
        self.config, self.text = cfg.copy(), text  # a snapshot: the base the next save's own edits are found from

    def _take_outside_edits(self) -> Config | None:
        """Start from the file on disk when something else changed it (its comments are kept) and return its
        config; None when it did not change. When that change left it unreadable, the project becomes damaged
        and nothing is written."""
        try:
            disk = self.file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None  # a new project, or one whose file was deleted: written afresh
        except (OSError, UnicodeDecodeError) as e:
            raise KDError(f"Cannot read '{self.file}' before saving ({getattr(e, 'strerror', None) or e}); "
                          "nothing was written.") from None
        if disk == self.text:
            return None
        try:
            outside = config_mod.loads(disk, where=str(self.file))
        except ConfigError as e:
            self.config, self.text, self.error = None, disk, str(e)
            raise KDError(f"Project '{self.name}': project.toml was changed outside KD Studio and is now damaged "
                          f"({e}); it is not overwritten. Fix it in the TOML editor or in a text editor.") from None
        self.text = disk
        return outside

    def save_text(self, text: str) -> Config:
        """Parse TOML text and, only when it is valid TOML with known keys, write it as project.toml, as typed."""
        cfg = config_mod.loads(text, where=PROJECT_FILE)
        text = text if text.endswith("\n") else text + "\n"
        atomic_write_text(self.file, text)
        self.config, self.text, self.error = cfg, text, None
        return cfg

    def new_run_dir(self) -> Path:
        """A fresh, not yet existing run folder named by the current time."""
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path, n = self.runs_dir / stamp, 2
        while path.exists():
            path, n = self.runs_dir / f"{stamp}-{n}", n + 1
        return path

    def delete_run(self, run: RunInfo) -> None:
        """Remove one run folder of this project (the GUI asks first)."""
        path = Path(run.path)
        if path.resolve().parent != self.runs_dir.resolve():
            raise KDError(f"'{path}' is not a run of project '{self.name}'; nothing was deleted.")
        shutil.rmtree(path)

    def runs(self) -> list[RunInfo]:
        """Every run folder, newest first, with status from summary.json (no summary: 'incomplete')."""
        out = []
        if not self.runs_dir.is_dir():
            return out
        for d in self.runs_dir.iterdir():
            if not d.is_dir() or d.name.startswith("."):
                continue
            try:
                read = summary_mod.read(RunDir(d).summary)  # through the schema: a damaged file is one run's problem
                summary = read.to_json() if read is not None else None
                if summary is None and (d / "sweep.toml").is_file():
                    raw = read_json(d / "sweep.json", default=None)  # a damaged file: the sweep shows as incomplete
                    summary = raw if isinstance(raw, dict) and raw else {"status": "incomplete"}
                    summary = {**summary, "sweep": True, "started": _mtime_iso(d / "sweep.toml")}
            except summary_mod.SummaryError as e:
                out.append(RunInfo(d, "damaged", _mtime_iso(d), {"error": str(e)}))
                continue
            except (OSError, ValueError):
                summary = None
            if isinstance(summary, dict):
                out.append(RunInfo(d, str(summary.get("status", "unknown")), str(summary.get("started", "")),
                                   summary))
            else:
                out.append(RunInfo(d, "incomplete", _mtime_iso(d), {}))
        out.sort(key=lambda r: (r.started, r.name), reverse=True)
        return out


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "sweep":  # run.sweep is one value (a table of lists), not a section
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def merge_edits(base: Config, mine: Config, outside: Config) -> Config:
    """`outside` (the file as another process left it) with the values this window changed since `base` (the
    file as it last read it): an edit made elsewhere is kept unless this window changed that same value."""
    was, now = _leaves(base.to_dict()), _leaves(mine.to_dict())
    merged = outside.copy()
    for key, value in now.items():
        if was.get(key) != value:
            merged.set(key, value)
    return merged


def _mtime_iso(path: Path) -> str:
    return _dt.datetime.fromtimestamp(path.stat().st_mtime).isoformat(timespec="seconds")


class ProjectStore:
    """The folder of projects: list, create, rename, duplicate, delete, import."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else projects_root()

    def _inside(self, path: Path) -> Path:
        """Refuse any path that is not a direct child of the store (defence against odd names)."""
        path = Path(path)
        if path.resolve().parent != self.root.resolve():
            raise KDError(f"'{path}' is not a project folder of this store; nothing was changed.")
        return path

    def list(self) -> list[Project]:
        """Every project (damaged ones included), sorted by name."""
        if not self.root.is_dir():
            return []
        found = [Project(d).reload() for d in self.root.iterdir()
                 if d.is_dir() and not d.name.startswith(".") and (d / PROJECT_FILE).exists()]
        return sorted(found, key=lambda p: p.name.lower())

    def get(self, name: str) -> Project | None:
        """The project in the folder of exactly that name (a project's identity is its folder: 'R&D' is not
        'R_D'), else in the folder its sanitised name gives, or None."""
        for folder in dict.fromkeys((str(name), sanitize_name(name))):
            if folder in ("", ".", "..") or "/" in folder or "\\" in folder or "\0" in folder:
                continue
            path = self.root / folder
            if (path / PROJECT_FILE).exists():
                return Project(path).reload()
        return None

    def unique_name(self, wanted: str) -> str:
        """`wanted` sanitised, with " 2", " 3"… appended when a project of that name exists."""
        base = sanitize_name(wanted)
        name, n = base, 2
        while (self.root / name).exists():
            name, n = f"{base} {n}", n + 1
        return name

    def create(self, name: str, cfg: Config | None = None) -> Project:
        """A new project folder with project.toml and runs/ (name made unique)."""
        path = self.root / self.unique_name(name)
        try:
            (path / RUNS).mkdir(parents=True)
        except OSError as e:
            raise KDError(f"Cannot create the project folder '{path}' ({e.strerror or e}); "
                          "check that the projects folder is writable.") from None
        project = Project(path)
        project.save(cfg if cfg is not None else Config())
        return project

    def rename(self, project: Project, new_name: str) -> Project:
        """Rename the project folder; the new name is sanitised and must be free."""
        target = self.root / sanitize_name(new_name)
        if target == project.path:
            return project
        if target.exists() and target.name.lower() != project.path.name.lower():
            raise KDError(f"A project named '{target.name}' already exists; choose another name.")
        self._inside(project.path).rename(target)
        return Project(target).reload()

    def duplicate(self, project: Project, new_name: str | None = None) -> Project:
        """A copy of the project's settings (project.toml as text, damaged or not); runs are not copied."""
        target = self.root / self.unique_name(new_name or f"{project.name} copy")
        (target / RUNS).mkdir(parents=True)
        shutil.copy2(self._inside(project.path) / PROJECT_FILE, target / PROJECT_FILE)
        return Project(target).reload()

    def delete(self, project: Project) -> None:
        """Remove the project folder with its runs (the GUI asks first)."""
        path = self._inside(project.path)
        if not (path / PROJECT_FILE).exists():
            raise KDError(f"'{path}' does not look like a project folder; nothing was deleted.")
        shutil.rmtree(path)

    def import_config(self, file: str | Path, name: str | None = None) -> Project:
        """A new project from a TOML config file, copied as written with its comments (it must parse; validation
        problems are shown later)."""
        cfg = config_mod.load(file)
        project = self.create(name or Path(file).stem, cfg)
        project.save_text(Path(file).read_text(encoding="utf-8"))
        return project
