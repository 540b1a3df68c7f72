"""The open project's config as one shared object: edits, validation, and atomic autosave.

Every page edits the config through `ConfigModel.set(key, value)`; the model validates the whole config, tells
every page which fields have problems, and saves the project a moment after the last edit (never a damaged one).
"""

from __future__ import annotations

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

from ..core import config as config_mod
from ..core.config import Config
from ..core.errors import ConfigError, KDError
from ..core.store.lock import FolderLock, LockedError
from ..core.store.projects import Project

AUTOSAVE_MS = 400


class ConfigModel(QObject):
    """Current project + its config; emits what changed, which fields are invalid, and save results."""

    project_changed = Signal(object)   # Project | None
    config_changed = Signal(str)       # the dotted key that changed, "" = everything
    problems_changed = Signal(list)    # [(dotted key, message)]
    saved = Signal(str)                # a short status text
    save_failed = Signal(str)
    # project.toml changed outside this window while an edit of ours waits for autosave: the window asks
    # whether to reload it (ours are dropped) or keep ours (saved over it, its changes to other values kept)
    changed_on_disk = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.project: Project | None = None
        self.cfg: Config | None = None
        self.problems: list[tuple[str, str]] = []
        self.config_problems: list[tuple[str, str]] = []  # what config.problems and the forms' text found
        # Found only by building the models and reading the data (info.py, in the background): they block Start
        # and outline their field like a config problem; `warnings` (a student larger than its teacher) do not.
        self.run_problems: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        self.local_errors: dict[str, str] = {}
        self.read_only: str | None = None  # why this window may not save the project (another one holds it)
        self._lock: FolderLock | None = None
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(AUTOSAVE_MS)
        self._timer.timeout.connect(self.save_now)
        # project.toml written by another program: reloaded at once when nothing of ours is pending, else asked.
        # The folder is watched too: an atomic write replaces the file, and the watch on the old one ends.
        self._watcher = QFileSystemWatcher(self)
        self._watcher.fileChanged.connect(lambda _path: self._disk_check.start())
        self._watcher.directoryChanged.connect(lambda _path: self._disk_check.start())
        self._disk_check = QTimer(self)
        self._disk_check.setSingleShot(True)
        self._disk_check.setInterval(150)  # one check after a burst of events (write, rename, chmod)
        self._disk_check.timeout.connect(self.check_disk)

    # ---- project ---------------------------------------------------------------------------------------
    def set_project(self, project: Project | None) -> None:
        """Show another project (a pending autosave of the current one is written first)."""
        self.save_now()
        self.release()
        self.project = project
        self.cfg = project.config.copy() if project is not None and project.config is not None else None
        self._take_lock(project)
        self._watch(project)
        self.local_errors.clear()
        self.run_problems, self.warnings = [], []  # the other project's checks say nothing about this one
        self.project_changed.emit(project)
        self.validate()
        self.config_changed.emit("")
        if self.read_only:
            self.save_failed.emit(self.read_only)

    def _take_lock(self, project: Project | None) -> None:
        """One window (or process) edits a project at a time; a second one shows it read-only and says why."""
        self.read_only = None
        if project is None or not project.path.is_dir():
            return
        try:
            self._lock = FolderLock(project.path, "project").acquire()
        except LockedError as e:
            self.read_only = (f"Read-only: {e}").replace("; wait for it to finish or stop it", "; close it there "
                                                         "to edit here")
        except KDError as e:  # a folder we cannot write: nothing would save anyway
            self.read_only = f"Read-only: {e}"

    def _watch(self, project: Project | None) -> None:
        """Watch the project's file (and its folder) for changes made outside this window."""
        old = self._watcher.files() + self._watcher.directories()
        if old:
            self._watcher.removePaths(old)
        if project is not None and project.path.is_dir():
            self._watcher.addPaths([str(p) for p in (project.file, project.path) if p.exists()])

    def check_disk(self) -> None:
        """project.toml changed outside this window: reload it when nothing of ours is pending, else ask the
        window (changed_on_disk); our own writes leave the file as we wrote it and change nothing."""
        project = self.project
        if project is None or self.read_only:
            return
        self._watch(project)  # re-arm: the file may have been replaced
        try:
            disk = project.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return  # deleted or unreadable: the next save says so (and never re-creates a deleted project)
        if disk == project.text:
            return
        if self._dirty:
            self.changed_on_disk.emit()
            return
        self.reload_from_disk()

    def reload_from_disk(self) -> None:
        """Take project.toml as it is on disk now (edits of ours still pending are dropped)."""
        self._timer.stop()
        self._dirty = False
        project = self.project.reload()
        if project.config is None:
            self.save_failed.emit(f"{project.file.name} was changed outside this window and cannot be read now "
                                  f"({project.error}); fix it in Config as TOML. Nothing was overwritten.")
            return
        self.cfg = project.config.copy()
        self.local_errors.clear()
        self.validate()
        self.config_changed.emit("")
        self.saved.emit(f"Reloaded {project.file.name}: it was changed outside this window")

    def release(self) -> None:
        """Give the open project's lock back (another project opens, the window closes)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def replace(self, cfg: Config) -> None:
        """Take a whole new config and save it (a moment later, as a form edit is)."""
        self.cfg = cfg
        self.local_errors.clear()
        self.validate()
        self.config_changed.emit("")
        self._dirty = True
        self._timer.start()

    def save_text(self, text: str) -> None:
        """Write the TOML editor's text as project.toml exactly as typed (its comments kept) and take its config;
        a ConfigError (bad TOML, unknown key, wrong type) leaves the file and the config as they were."""
        if self.read_only:
            raise KDError(self.read_only)
        cfg = self.project.save_text(text)
        self._timer.stop()  # the text replaces any form edit still waiting for autosave
        self._dirty = False
        self.cfg = cfg.copy()
        self.local_errors.clear()
        self.validate()
        self.config_changed.emit("")
        self.saved.emit(f"Saved {self.project.file.name}")

    # ---- edits -----------------------------------------------------------------------------------------
    def set(self, key: str, value) -> bool:
        """Set one value; a type error becomes that field's problem. True when the config changed."""
        if self.cfg is None:
            return False
        try:
            if self.cfg.get(key) == value and key not in self.local_errors:
                return False
            self.cfg.set(key, value)
        except ConfigError as e:
            self.local_errors[key] = str(e)
            self.validate()
            return False
        self.local_errors.pop(key, None)
        self.validate()
        self.config_changed.emit(key)
        self._dirty = True
        self._timer.start()
        return True

    def set_local_error(self, key: str, message: str) -> None:
        """A field's text is not a value of its type ("" clears it); the config keeps its last good value."""
        if message:
            self.local_errors[key] = message
        elif key in self.local_errors:
            del self.local_errors[key]
        else:
            return
        self.validate()

    def validate(self) -> list[tuple[str, str]]:
        """Recompute the problems (config.problems: every check, + unparsed text) and announce them."""
        found: list[tuple[str, str]] = []
        if self.cfg is not None:
            try:
                found = config_mod.problems(self.cfg)
            except KDError as e:
                found = [(getattr(e, "key", None) or "", str(e))]
            except Exception as e:  # noqa: BLE001 - a check that crashes must not take the window down
                found = [("", f"A configuration check failed unexpectedly: {e!r}")]
        found = list(self.local_errors.items()) + [(k, m) for k, m in found if k not in self.local_errors]
        self.config_problems = list(found)
        keys = {k for k, _ in found}
        found += [(k, m) for k, m in self.run_problems if k not in keys]
        self.problems = found
        self.problems_changed.emit(found)
        return found

    def set_run_problems(self, problems: list[tuple[str, str]], warnings: list[str] = ()) -> None:
        """The background checks' findings for the current config (see `run_problems`); announced as problems."""
        problems, warnings = list(problems), list(warnings)
        if problems == self.run_problems and warnings == self.warnings:
            return
        self.run_problems, self.warnings = problems, warnings
        self.validate()

    @property
    def valid(self) -> bool:
        """True when the config has no problem (Start is enabled)."""
        return self.cfg is not None and not self.problems

    def problem_map(self) -> dict[str, str]:
        """Dotted key → first message."""
        out: dict[str, str] = {}
        for k, m in self.problems:
            out.setdefault(k, m)
        return out

    # ---- saving ----------------------------------------------------------------------------------------
    def save_now(self) -> bool:
        """Write a pending edit to project.toml atomically; True when nothing is pending afterwards."""
        self._timer.stop()
        if not self._dirty or self.project is None or self.cfg is None:
            self._dirty = False
            return True
        if self.read_only:
            self.save_failed.emit(f"Not saved. {self.read_only}")
            return False
        try:
            self.project.save(self.cfg.copy())
        except (KDError, OSError) as e:
            self.save_failed.emit(f"Not saved: {e}")
            return False
        self._dirty = False
        merged = self.project.config  # another process's changes to other values, kept by the save
        if merged is not None and self.cfg is not None and merged.to_dict() != self.cfg.to_dict():
            self.cfg = merged.copy()
            self.validate()
            self.config_changed.emit("")
            self.saved.emit(f"Saved {self.project.file.name}, with the changes made to it outside this window")
            return True
        self.saved.emit(f"Saved {self.project.file.name}")
        return True

    @property
    def dirty(self) -> bool:
        """True while an edit waits for autosave."""
        return self._dirty
