"""What a desktop user expects of the window around a run: its progress in the title, a notification when it ends,
Space to pause and resume, the colours menu and the GPU figure in the status bar.

The window title is the portable place for progress: Qt 6 has no task-bar progress API (Qt 5's QWinTaskbarProgress
is gone); "37 % · Distilling · Project — KD Studio" shows in every task bar and window switcher. On Linux desktops
that read the Unity LauncherEntry D-Bus signal (KDE Plasma, Ubuntu Dock, Dash to Dock) the task-bar entry shows a
progress bar too, once the desktop entry is installed (`kdstudio --install-desktop-entry`). Notifications go
through the system tray where there is one (QSystemTrayIcon.showMessage), else a status-bar message and
QApplication.alert (the task-bar entry asks for attention). MainWindow makes one DesktopExtras after its menus.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractButton, QAbstractSpinBox, QApplication, QComboBox, QLineEdit, QMenu,
                               QPlainTextEdit, QSystemTrayIcon, QTextEdit)

from . import theme
from .status_gpu import GpuStatus

STAGE_VERBS = {"teacher": "Training the teacher", "distill": "Distilling", "baseline": "Training the baseline",
               "finetune": "Fine-tuning", "compress": "Compressing", "evaluate": "Evaluating",
               "export": "Exporting"}
TYPING = (QLineEdit, QAbstractSpinBox, QPlainTextEdit, QTextEdit)  # where Space is a character, never a command
NOTIFY_MS = 8000


def title_progress(percent: int, stage: str | None, paused: bool = False) -> str:
    """The part of the window title that says how far the run is: "37 % · Distilling" (", paused" when paused)."""
    verb = STAGE_VERBS.get(stage or "", (stage or "Starting").capitalize())
    return f"{percent} % · {verb}" + (" (paused)" if paused else "")


def run_ended_message(summary: dict, error: str | None) -> tuple[str, str]:
    """(title, body) of the notification for a run that ended."""
    if error:
        return "KD Studio: the run failed", error
    status = summary.get("status", "ended")
    student = (summary.get("student") or {}).get("accuracy")
    body = f"Student test accuracy {student:.1%}." if isinstance(student, (int, float)) else ""
    if status == "stopped":
        body = "Stopped with a checkpoint; it can be resumed from the run history."
    return f"KD Studio: the run {status}", body


class LauncherProgress:
    """Task-bar progress through com.canonical.Unity.LauncherEntry.Update; does nothing without a session bus."""

    APP_URI = "application://kdstudio.desktop"

    def __init__(self):
        self.last: int | None = None  # the percent last sent (None: hidden)
        self.sent = 0
        self._bus = None  # None: not looked for yet; False: there is none

    def _session_bus(self):
        """The session bus, looked for once (None without QtDBus or a bus)."""
        if self._bus is None:
            try:
                from PySide6.QtDBus import QDBusConnection
                bus = QDBusConnection.sessionBus()
                self._bus = bus if bus.isConnected() else False
            except ImportError:
                self._bus = False
        return self._bus or None

    def set(self, fraction: float | None) -> None:
        """Show `fraction` (0..1) on the task-bar entry, or hide it (None); sent only when the percent changes."""
        percent = None if fraction is None else max(0, min(100, round(fraction * 100)))
        if percent == self.last:
            return
        self.last = percent
        bus = self._session_bus()
        if bus is None:
            return
        from PySide6.QtDBus import QDBusMessage
        message = QDBusMessage.createSignal("/com/kdstudio/launcher", "com.canonical.Unity.LauncherEntry", "Update")
        message.setArguments([self.APP_URI, {"progress": (percent or 0) / 100.0,
                                             "progress-visible": percent is not None}])
        if bus.send(message):
            self.sent += 1


class DesktopExtras(QObject):
    """Title progress, end-of-run notification, the Space shortcut, View › Colours and the GPU label of a window."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.run = window.run
        self.tray: QSystemTrayIcon | None = None
        self.launcher = LauncherProgress()
        self.last_notice: tuple[str, str] | None = None  # what the last notification said (for tests)
        self.space = QShortcut(QKeySequence(Qt.Key_Space), window, context=Qt.WindowShortcut)
        self.space.activated.connect(self.toggle_pause)
        self.space.setEnabled(False)
        self.gpu = GpuStatus()
        window.statusBar().addPermanentWidget(self.gpu)
        window.hub.catalog_ready.connect(self.gpu.start)
        self.run.events.connect(lambda _batch: self.update_title())
        self.run.state_changed.connect(self._on_state)
        self.run.finished.connect(lambda summary: self.notify_ended(summary, None))
        self.run.failed.connect(lambda message, _details: self.notify_ended({}, message))

    # ---- the title ---------------------------------------------------------------------------------------
    def base_title(self) -> str:
        """The title without progress: the project and the app."""
        project = self.window.model.project
        return f"{project.name} — KD Studio" if project else "KD Studio"

    def update_title(self) -> None:
        """The run's share done and stage in front of the title while it runs; the plain title otherwise."""
        live, state = self.run.live, self.run.state
        if live is None or state == "idle" or not self.run.running:
            self.window.setWindowTitle(self.base_title())
            self.launcher.set(None)
            return
        value, _text, _detail = live.bar(paused=state == "paused")
        self.launcher.set(value / 1000)
        ran, shown = self.run.project, self.window.model.project
        other = f"{ran.name} · " if ran is not None and (shown is None or ran.path != shown.path) else ""
        self.window.setWindowTitle(f"{title_progress(value // 10, live.progress.stage, state == 'paused')} · "
                                   f"{other}{self.base_title()}")  # the running project, when another is shown

    def _on_state(self, state: str) -> None:
        self.space.setEnabled(state in ("running", "paused"))
        self.update_title()

    # ---- Space ---------------------------------------------------------------------------------------------
    def toggle_pause(self) -> None:
        """Pause a running run, resume a paused one; Space keeps its own meaning on a focused button or list."""
        focus = QApplication.focusWidget()
        if isinstance(focus, TYPING):
            return  # text fields take Space before shortcuts (ShortcutOverride); this is the belt to those braces
        if isinstance(focus, QAbstractButton) and focus.isVisible() and focus.isEnabled():
            focus.animateClick()  # Space presses the focused button, as everywhere on the desktop
            return
        if isinstance(focus, QComboBox) and focus.isVisible():
            focus.showPopup()
            return
        if self.run.state == "running":
            self.run.pause()
            self.window.statusBar().showMessage("Paused (Space resumes).", 4000)
        elif self.run.state == "paused":
            self.run.resume()
            self.window.statusBar().showMessage("Resumed.", 2000)

    # ---- when a run ends -------------------------------------------------------------------------------------
    def notify_ended(self, summary: dict, error: str | None) -> None:
        """Say that the run ended: a tray notification where there is a tray, else the status bar and an alert."""
        self.update_title()
        title, body = run_ended_message(summary, error)
        self.last_notice = (title, body)
        self.window.statusBar().showMessage(f"{title.removeprefix('KD Studio: ').capitalize()}. {body}".strip(),
                                            NOTIFY_MS)
        if self.window.isActiveWindow():
            return  # the user is looking at the window: the status bar is enough
        if QSystemTrayIcon.isSystemTrayAvailable() and QSystemTrayIcon.supportsMessages():
            if self.tray is None:
                self.tray = QSystemTrayIcon(QApplication.windowIcon(), self)
                self.tray.setToolTip("KD Studio")
                self.tray.messageClicked.connect(self._raise_window)
            self.tray.show()
            self.tray.showMessage(title, body, QSystemTrayIcon.Critical if error else QSystemTrayIcon.Information,
                                  NOTIFY_MS)
        QApplication.alert(self.window)  # the task-bar entry asks for attention until the window is activated

    def _raise_window(self) -> None:
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()

    # ---- View › Colours ------------------------------------------------------------------------------------
    def colours_menu(self) -> QMenu:
        """Follow the system / Light / Dark; the choice is saved in the settings ("theme")."""
        menu = QMenu("Colours", self.window)
        group = QActionGroup(menu)
        current = theme.requested(self.window.settings.get("theme"))
        for mode, text in (("auto", "Follow the system"), ("light", "Light"), ("dark", "Dark")):
            act = QAction(text, menu, checkable=True, checked=mode == current)
            act.triggered.connect(lambda _on=False, m=mode: self.set_colours(m))
            group.addAction(act)
            menu.addAction(act)
        return menu

    def set_colours(self, mode: str) -> None:
        """Apply a scheme now and remember it ($KDSTUDIO_THEME, when set, still wins at the next start)."""
        self.window.settings.set("theme", mode)
        self.window.settings.save()
        theme.apply(QApplication.instance(), mode)
