"""The project list on the left: new (blank or from a template), import, rename, duplicate, delete, open folder."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QFont
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit,
                               QListWidget, QListWidgetItem, QMainWindow, QMenu, QMessageBox, QToolButton, QVBoxLayout,
                               QWidget)

from ..core.config import Config
from ..core.errors import KDError
from ..core.store.projects import Project, ProjectStore, sanitize_name
from ..core.config.templates import demo_config, pretrained_to_mobilenet_config
from .widgets import STATUS_COLORS, dot_icon
from . import theme

TEMPLATES = {"Blank project": Config, "Digits demo": demo_config,
             "Pretrained teacher → MobileNet (your image folder)": pretrained_to_mobilenet_config}
DEMO_NAME = "Digits demo"
KEPT = " -_.()"  # what sanitize_name keeps besides letters and digits


def _why_changed(text: str, clean: str) -> str:
    """Why sanitize_name turned `text` into `clean` (a clause, no full stop)."""
    bad = list(dict.fromkeys(c for c in text if not (c.isalnum() or c in KEPT)))
    if bad:
        shown = [repr(c) if not c.isprintable() or c.isspace() else f"'{c}'" for c in bad]
        listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
        return f"{listed} cannot be part of a folder name"
    if clean == "Untitled":
        return f"'{text}' has no letters or digits to name a folder with"
    if clean.startswith("_") and not text.startswith("_"):
        return f"'{text.split('.')[0]}' is a reserved file name on Windows"
    if len(text) > 64 and clean == text[:64].rstrip(" ."):
        return "a folder name keeps at most 64 characters"
    return "a folder name has no repeated '_' or '.', nor any at its ends"


def name_note(typed: str, saved: str) -> str:
    """One sentence on how the name typed became the project's folder name ('' when it was kept as typed):
    "Saved as 'a_b' — '/' and ':' cannot be part of a folder name." """
    text = typed.strip()
    clean = sanitize_name(text)
    reasons = [_why_changed(text, clean)] if clean != text else []
    if saved != clean:
        reasons.append(f"a project named '{clean}' already exists")
    return f"Saved as '{saved}' — {'; '.join(reasons)}." if reasons else ""


class NameDialog(QDialog):
    """Asks for a project name and says, while it is typed, what folder name it becomes and whether it is free;
    `check(text) -> (message, ok)` gives that line (red and OK disabled when not ok)."""

    def __init__(self, parent, title: str, text: str, check):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.check = check
        self.edit = QLineEdit(text)
        self.edit.selectAll()
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setMinimumWidth(420)
        self.hint.setMinimumHeight(2 * self.hint.fontMetrics().lineSpacing() + 4)  # room for two lines, no jumps
        self.hint.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        col = QVBoxLayout(self)
        col.addWidget(QLabel("Project name:"))
        col.addWidget(self.edit)
        col.addWidget(self.hint)
        col.addWidget(self.buttons)
        self.edit.textChanged.connect(self._update)
        self._update(text)

    def _update(self, text: str) -> None:
        message, ok = self.check(text) if text.strip() else ("", False)
        self.hint.setText(message)
        self.hint.setObjectName("help" if ok else "problem")
        self.hint.setStyleSheet(f"color: {theme.color('muted' if ok else 'error')};")
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(ok)

    def name(self) -> str | None:
        """The name typed, or None when cancelled (modal)."""
        return self.edit.text().strip() if self.exec() == QDialog.Accepted else None


class ProjectPanel(QWidget):
    """Lists the store's projects; emits `opened(Project)` and reports problems with `error(str)`."""

    opened = Signal(object)      # Project
    removed = Signal(str)        # name of a deleted project
    renamed = Signal(str, str)   # old, new
    error = Signal(str)

    def __init__(self, store: ProjectStore, parent=None):
        super().__init__(parent)
        self.store = store
        self.current: str | None = None
        self.live: tuple[Path, str] | None = None  # (run folder, state) of the run in progress, see set_live_run
        self.busy: set[str] = set()  # projects a run (going or queued) writes into: not renamed or deleted now
        title = QLabel("Projects")
        title.setObjectName("sectionTitle")
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(lambda _t: self.reload())
        self.list = QListWidget()
        self.list.setObjectName("projectList")
        self.list.itemClicked.connect(self._on_click)
        self.list.currentItemChanged.connect(lambda cur, _prev: cur and self._open_item(cur))
        self.list.setContextMenuPolicy(Qt.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)

        self.new_blank_act = QAction("New blank project…", self, triggered=lambda: self.new_project())
        self.new_demo_act = QAction("New from “Digits demo” template…", self,
                                    triggered=lambda: self.new_project(template=DEMO_NAME))
        self.import_act = QAction("Import config TOML…", self, triggered=lambda: self.import_config())
        self.rename_act = QAction("Rename…", self, triggered=lambda: self.rename_current())
        self.duplicate_act = QAction("Duplicate", self, triggered=lambda: self.duplicate_current())
        self.delete_act = QAction("Delete…", self, triggered=lambda: self.delete_current())
        self.folder_act = QAction("Open project folder", self, triggered=self.open_folder)
        new_btn = QToolButton()
        new_btn.setText("New")
        new_btn.setPopupMode(QToolButton.InstantPopup)
        new_menu = QMenu(new_btn)
        new_menu.addActions([self.new_blank_act, self.new_demo_act, self.import_act])
        new_btn.setMenu(new_menu)
        more_btn = QToolButton()
        more_btn.setText("Project")
        more_btn.setPopupMode(QToolButton.InstantPopup)
        more_menu = QMenu(more_btn)
        more_menu.addActions(self.project_actions())
        more_btn.setMenu(more_menu)
        row = QHBoxLayout()
        row.addWidget(title, 1)
        row.addWidget(new_btn)
        row.addWidget(more_btn)
        col = QVBoxLayout(self)
        col.setContentsMargins(8, 8, 4, 8)
        col.addLayout(row)
        col.addWidget(self.filter)
        col.addWidget(self.list, 1)
        self.where = QLabel(f"<a href='#'>{store.root}</a>")
        self.where.setObjectName("help")
        self.where.setWordWrap(True)
        self.where.setToolTip("Where projects are stored (set KDSTUDIO_HOME to move them)")
        self.where.linkActivated.connect(lambda _l: self._open_path(self.store.root))
        self.notice = QLabel()  # what became of a typed name (sanitised, taken)
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.notice.hide()
        col.addWidget(self.notice)
        col.addWidget(self.where)
        self._update_actions()

    def project_actions(self) -> list[QAction]:
        """Rename, duplicate, delete, open folder (for menus)."""
        return [self.rename_act, self.duplicate_act, self.delete_act, self.folder_act]

    # ---- list -------------------------------------------------------------------------------------------
    def reload(self, select: str | None = None) -> None:
        """Re-read the store; keep (or move) the selection without re-opening."""
        select = select if select is not None else self.current
        needle = self.filter.text().strip().lower()
        self.list.blockSignals(True)
        self.list.clear()
        for p in self.store.list():
            if needle and needle not in p.name.lower():
                continue
            item = QListWidgetItem(p.name)
            item.setData(Qt.UserRole, p.name)
            if p.damaged:
                item.setIcon(dot_icon(STATUS_COLORS["damaged"]))
                item.setText(f"{p.name}\ndamaged: project.toml unreadable")
                item.setToolTip(p.error)
            else:
                line, color = self._runs_line(p)
                item.setIcon(dot_icon(color))
                item.setText(f"{p.name}\n{line}")
                item.setToolTip(str(p.path))
            if p.name == select:
                f = QFont(item.font())
                f.setBold(True)
                item.setFont(f)
            self.list.addItem(item)
            if p.name == select:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self._update_actions()

    def set_live_run(self, run_dir: Path | str | None, state: str = "running") -> None:
        """Tell the list which run is in progress (None when none is) and its state ("running", "paused",
        "stopping"): its project's line says so instead of what its folder says before the run has ended."""
        live = (Path(run_dir), state) if run_dir is not None and state != "idle" else None
        if live != self.live:
            self.live = live
            self.reload()

    def _runs_line(self, project: Project) -> tuple[str, str]:
        """The line under a project's name ("3 runs · student 97.2%", "1 run · running") and its dot's colour."""
        runs = project.runs()
        live = self.live if self.live and self.live[0].parent.resolve() == project.runs_dir.resolve() else None
        unlisted = live is not None and all(Path(r.path).resolve() != live[0].resolve() for r in runs)
        n = len(runs) + unlisted  # a run that has just started may not have written its folder yet
        count = f"{n} run{'s' if n != 1 else ''}"
        if live:
            return f"{count} · {live[1]}", STATUS_COLORS.get(live[1], STATUS_COLORS["running"])
        if not runs:
            return count, theme.color("input_border")
        last = runs[0]
        acc = (last.summary.get("student") or {}).get("accuracy")
        line = f"{count} · student {acc:.1%}" if acc is not None else f"{count} · last {last.status}"
        return line, STATUS_COLORS.get(last.status, "#9aa0a6")

    def names(self) -> list[str]:
        """Project names shown in the list."""
        return [self.list.item(i).data(Qt.UserRole) for i in range(self.list.count())]

    def say(self, text: str) -> None:
        """Show one sentence under the list ("" hides it); while the list is folded away, in the status bar."""
        self.notice.setText(text)
        self.notice.setVisible(bool(text))
        window = self.window()
        if text and not self.isVisible() and isinstance(window, QMainWindow):
            window.statusBar().showMessage(text, 15000)

    def open(self, name: str) -> Project | None:
        """Open a project by name (emits `opened`)."""
        self.say("")
        project = self.store.get(name)
        if project is None:
            self.error.emit(f"Project '{name}' no longer exists.")
            return None
        self.current = project.name
        self.reload(project.name)
        self.opened.emit(project)
        return project

    def _on_click(self, item: QListWidgetItem) -> None:
        if item.data(Qt.UserRole) != self.current:
            self._open_item(item)

    def _open_item(self, item: QListWidgetItem) -> None:
        name = item.data(Qt.UserRole)
        if name != self.current:
            self.open(name)

    def set_busy(self, names: set[str]) -> None:
        """Name the projects a run in progress or a queued run writes into: Rename and Delete are off for them."""
        self.busy = set(names)
        self._update_actions()

    def _update_actions(self) -> None:
        for act in self.project_actions():
            act.setEnabled(self.current is not None)
        busy = self.current in self.busy
        for act in (self.rename_act, self.delete_act):
            act.setEnabled(self.current is not None and not busy)
            act.setToolTip("A run (in progress or queued) writes into this project; rename or delete it when it "
                           "has ended." if busy else act.text().rstrip("…"))

    def _context_menu(self, pos) -> None:
        menu = QMenu(self)
        menu.addActions(self.project_actions())
        menu.addSeparator()
        menu.addActions([self.new_blank_act, self.new_demo_act, self.import_act])
        menu.exec(self.list.mapToGlobal(pos))

    # ---- operations (each can be driven without dialogs by passing the answer) --------------------------
    def _project(self) -> Project | None:
        return self.store.get(self.current) if self.current else None

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except (KDError, OSError) as e:
            self.error.emit(str(e))
            return None

    def new_project(self, name: str | None = None, template: str = "Blank project") -> Project | None:
        """Create a project (blank or from a template) and open it."""
        if name is None:
            default = self.store.unique_name(template if template != "Blank project" else "Untitled")
            name = NameDialog(self, "New project", default, self.check_new_name).name()
            if not name:
                return None
        project = self._guard(self.store.create, name, TEMPLATES.get(template, Config)())
        return self._opened_as(name, project)

    def _opened_as(self, typed: str, project: Project | None) -> Project | None:
        """Open the project just made from a typed name and say how the name changed, if it did."""
        if project is None:
            return None
        opened = self.open(project.name)
        self.say(name_note(typed, project.name))
        return opened

    def check_new_name(self, text: str) -> tuple[str, bool]:
        """The new-project dialog's line: the folder name the text becomes (made unique), if not the text."""
        note = name_note(text, self.store.unique_name(text))
        return note.replace("Saved as", "Will be saved as", 1), True

    def check_rename(self, text: str) -> tuple[str, bool]:
        """The rename dialog's line: the folder name the text becomes; not ok when another project has it."""
        clean, current = sanitize_name(text), self.current or ""
        other = self.store.get(clean)
        if other is not None and clean.lower() != current.lower():
            return f"A project named '{other.name}' already exists; choose another name.", False
        note = name_note(text, clean).replace("Saved as", "Will be saved as", 1)
        if clean == current and text.strip() != current:
            note = (note[:-1] + "; " if note else "") + "that is its current name, so nothing changes."
        return note, True

    def import_config(self, path: str | None = None) -> Project | None:
        """A new project from a TOML config file."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Import config", str(Path.home()), "TOML config (*.toml)")
            if not path:
                return None
        project = self._guard(self.store.import_config, path)
        return self.open(project.name) if project else None

    def rename_current(self, new_name: str | None = None) -> Project | None:
        """Rename the open project."""
        project = self._project()
        if project is None:
            return None
        if new_name is None:
            new_name = NameDialog(self, "Rename project", project.name, self.check_rename).name()
            if not new_name:
                return None
        renamed = self._guard(self.store.rename, project, new_name)
        if renamed is not None and renamed.name != project.name:
            self.renamed.emit(project.name, renamed.name)
        return self._opened_as(new_name, renamed)

    def duplicate_current(self) -> Project | None:
        """Copy the open project's settings into a new project (runs are not copied) and open it."""
        project = self._project()
        copy = self._guard(self.store.duplicate, project) if project else None
        return self.open(copy.name) if copy else None

    def delete_current(self) -> bool:
        """Delete the open project after asking; True when deleted."""
        project = self._project()
        if project is None:
            return False
        n = len(project.runs())
        answer = QMessageBox.question(self, "Delete project",
                                      f"Delete project “{project.name}” and its {n} run(s) from disk? "
                                      "This cannot be undone.", QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        if answer != QMessageBox.Yes:
            return False
        if self._guard(self.store.delete, project) is None and project.path.exists():
            return False
        self.current = None
        self.removed.emit(project.name)
        self.reload()
        names = self.names()
        if names:
            self.open(names[0])
        else:
            self.opened.emit(None)
        return True

    def open_folder(self) -> None:
        """Show the open project's folder in the file manager."""
        project = self._project()
        if project is not None:
            self._open_path(project.path)

    def _open_path(self, path: Path) -> None:
        path = Path(path)
        if path == self.store.root:
            path.mkdir(parents=True, exist_ok=True)  # the projects folder, before the first project
        elif not path.is_dir():
            if not (path.parent / "project.toml").is_file():  # a project deleted outside: never re-create it
                self.error.emit(f"'{path}' no longer exists; it was moved or deleted outside KD Studio.")
                return
            path.mkdir(exist_ok=True)  # a project's runs/ folder before its first run
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))
