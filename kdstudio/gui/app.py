"""Application start-up: QApplication, icon, style, the main window, and the demo mode.

Torch is not imported here: the window is shown first and PyTorch loads in a background thread.
`kdstudio gui --demo --autorun --quit-when-done --screenshot PATH` opens (or creates) the Digits demo project,
runs it, saves a PNG of the window when it ends (PATH may contain `{page}` for one PNG per page) and quits;
`--theme dark|light|auto` forces the colours (as $KDSTUDIO_THEME does).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from ..core.resources import resources_dir
from ..core.store.settings import Settings
from . import gcguard, refguard, tasks, theme, window_state


def app_icon() -> QIcon:
    """The application icon (SVG, with a PNG fallback)."""
    icon = QIcon()
    for name in ("kdstudio.svg", "kdstudio-256.png"):
        path = resources_dir() / "icons" / name
        if path.is_file():
            icon.addFile(str(path))
    return icon


def apply_style(app: QApplication, mode: str | None = None) -> str:
    """Fusion style plus the KD Studio palette and stylesheet in the light or dark scheme (theme.py); returns it."""
    app.setStyle("Fusion")
    return theme.apply(app, mode, settings_value=Settings().get("theme"))


def make_app() -> QApplication:
    """The QApplication (existing one reused, e.g. under pytest-qt), styled once."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    refguard.top_up()
    if app.property("kdstudio_styled"):
        return app
    app.setApplicationName("KD Studio")
    app.setOrganizationName("kdstudio")
    app.setDesktopFileName("kdstudio")  # matches the entry `kdstudio --install-desktop-entry` writes (Wayland app id)
    app.setWindowIcon(app_icon())
    apply_style(app)  # a stylesheet set again re-polishes every widget alive: once is enough
    app.setProperty("kdstudio_styled", True)
    gcguard.install(app)  # Qt objects are freed in the GUI thread, never by a collection in a worker thread
    return app


def _install_excepthook(window, debug: bool) -> None:
    """An unexpected exception in a slot becomes a message in the window, never a crash."""
    def hook(kind, value, tb):
        text = "".join(traceback.format_exception(kind, value, tb))
        print(text, file=sys.stderr)
        box = QMessageBox(QMessageBox.Critical, "Unexpected error",
                          f"Something went wrong inside KD Studio: {value!r}. Your project is saved; please "
                          "report this with the details.", QMessageBox.Ok, window)
        box.setDetailedText(text)
        box.open()
    sys.excepthook = hook


def save_screenshots(window, path: str) -> list[str]:
    """PNG(s) of the whole window: one file, or one per page when `path` contains '{page}'."""
    from .main_window import PAGES
    out = []
    pages = PAGES if "{page}" in path else [None]
    for page in pages:
        if page is not None:
            window.show_page(page)
        for _ in range(5):
            QApplication.processEvents()
        target = Path(path.replace("{page}", (page or "").lower()))
        target.parent.mkdir(parents=True, exist_ok=True)
        if window.grab().save(str(target), "PNG"):
            out.append(str(target))
    return out


def main(args=None) -> int:
    """Open the desktop app; returns the exit code (demo mode: 0 when the run completed)."""
    demo = bool(getattr(args, "demo", False))
    autorun = bool(getattr(args, "autorun", False))
    quit_when_done = bool(getattr(args, "quit_when_done", False))
    screenshot = getattr(args, "screenshot", None)
    debug = bool(getattr(args, "debug", False))

    app = make_app()
    if getattr(args, "theme", None):
        theme.apply(app, args.theme)
    from .main_window import MainWindow
    window = MainWindow()
    window_state.restore(window)
    window.open_initial(demo=demo)
    window.show()
    _install_excepthook(window, debug)
    QTimer.singleShot(0, window.hub.load_catalog)
    # what is alive once every page is built lives as long as the app: no collection walks it (as InfoHub does
    # for torch's objects once it has loaded)
    window.prebuilder.done.connect(gcguard.freeze)
    window.prebuilder.start()  # the other pages, one per idle tick (prebuild.py)
    result = {"code": 0}

    if autorun:
        def go():
            window.show_page("Train")
            if not window.run.start():
                problems = "; ".join(m for _, m in window.model.problems) or "the project cannot run"
                print(f"kdstudio: cannot start the demo run: {problems}", file=sys.stderr)
                result["code"] = 2
                if quit_when_done:
                    app.exit(2)
        started = {"done": False}

        def once(*_):
            if not started["done"]:
                started["done"] = True
                QTimer.singleShot(200, go)
        window.hub.catalog_ready.connect(once)
        window.hub.info_failed.connect(once)

    def ended(code: int):
        stall = window.run.last_stall
        if stall and stall["n"]:
            print(f"kdstudio: {window.run.probe.describe()}", flush=True)
        if debug:
            print(f"kdstudio: refcount guard {refguard.status()}", flush=True)
        if screenshot:
            window.show_page("Train")
            for saved in save_screenshots(window, screenshot):
                print(f"kdstudio: saved {saved}", flush=True)
        if quit_when_done:
            result["code"] = code
            window.close()
            app.exit(code)

    if autorun and (quit_when_done or screenshot):
        window.run.finished.connect(lambda s: QTimer.singleShot(
            300, lambda: ended(0 if s.get("status") == "completed" else 1)))
        window.run.failed.connect(lambda m, d: (print(f"kdstudio: run failed: {m}", file=sys.stderr),
                                                QTimer.singleShot(300, lambda: ended(1))))
    elif screenshot:
        QTimer.singleShot(1500, lambda: ended(0))

    quit_on_close = app.quitOnLastWindowClosed()
    if quit_when_done:
        app.setQuitOnLastWindowClosed(False)  # we exit explicitly; a late Quit event would stop later event loops
    try:
        code = app.exec()
    finally:
        app.setQuitOnLastWindowClosed(quit_on_close)
        tasks.wait_for_tasks()
    return result["code"] if quit_when_done else code
