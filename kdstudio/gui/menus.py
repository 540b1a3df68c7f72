"""The window's menu bar: File, Project, Run, View and Help, built from the actions the window's parts own (the
project list's, the run controller's, the docks' toggles)."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMessageBox

from .. import __version__
from .help import guide_action
from .launch_dialog import launch_script_action
from .page_slots import PAGES


def build_menus(window) -> None:
    """Fill `window`'s menu bar (a MainWindow: it keeps recent_menu, projects_act and toml_act for later use)."""
    r, p = window.run, window.panel
    m = window.menuBar().addMenu("&File")
    m.addActions([p.new_blank_act, p.new_demo_act, p.import_act])
    window.recent_menu = m.addMenu("Open recent")
    m.addSeparator()
    save = QAction("Save", window, shortcut=QKeySequence.Save, triggered=window.model.save_now)
    m.addAction(save)
    m.addAction(p.folder_act)
    m.addSeparator()
    m.addAction(QAction("Quit", window, shortcut=QKeySequence.Quit, triggered=window.close))
    m = window.menuBar().addMenu("&Project")
    m.addActions(p.project_actions())
    m = window.menuBar().addMenu("&Run")
    m.addActions([r.start_act, r.pause_act, r.resume_act, r.stop_act])
    m.addSeparator()
    queue_act = window.queue_ui.dock.toggleViewAction()
    queue_act.setText("Run queue")
    m.addAction(queue_act)
    m.addAction(QAction("Save plots as PNG…", window, triggered=lambda: window.train.plots._ask_save()))
    m.addAction(launch_script_action(window, window.model))
    m = window.menuBar().addMenu("&View")
    window.projects_act = QAction("Project list", window, checkable=True, checked=True, iconText="☰",
                                  shortcut=QKeySequence("Ctrl+B"), toolTip="Show or hide the project list (Ctrl+B)",
                                  triggered=lambda on: window.set_project_list_visible(on, chosen=True))
    window.projects_btn.setDefaultAction(window.projects_act)
    m.addAction(window.projects_act)
    window.toml_act = window.toml_dock.toggleViewAction()
    window.toml_act.setText("Config as TOML")
    window.toml_act.setShortcut(QKeySequence("Ctrl+T"))
    m.addAction(window.toml_act)
    m.addMenu(window.desktop.colours_menu())
    window.toml_btn.toggled.connect(window.toml_dock.setVisible)
    window.toml_dock.visibilityChanged.connect(window.toml_btn.setChecked)
    for i, name in enumerate(PAGES):
        m.addAction(QAction(f"{name} page", window, shortcut=QKeySequence(f"Ctrl+{i + 1}"),
                            triggered=lambda _=False, n=name: window.show_page(n)))
    m = window.menuBar().addMenu("&Help")
    m.addAction(guide_action(window))
    m.addAction(QAction("About KD Studio", window, triggered=lambda: about(window)))


def about(window) -> None:
    """The About box: the version and where the projects live."""
    QMessageBox.about(window, "About KD Studio",
                      f"<b>KD Studio {__version__}</b><br>A desktop workbench for knowledge distillation.<br>"
                      f"Projects: {window.store.root}")
