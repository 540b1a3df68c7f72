"""project.toml changed outside the window: reloaded at once when nothing of ours is pending, asked otherwise."""

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from kdstudio.core.store.files import atomic_write_text
from kdstudio.core.store.projects import ProjectStore
from kdstudio.gui.disk_prompt import KEEP, RELOAD
from tests.helpers import tiny_config


def _open(window, name):
    project = ProjectStore().create(name, tiny_config())
    window.model.set_project(project)
    return project


def _edit_outside(project, old: str, new: str) -> None:
    """Another program rewrites project.toml (atomically, as editors and our own store do)."""
    text = project.file.read_text(encoding="utf-8")
    assert old in text
    atomic_write_text(project.file, text.replace(old, new, 1))


def _answer(qtbot, button_text: str, seen: list, tries: int = 200) -> None:
    """Click `button_text` in the changed-on-disk question once it is up (a real click on the real dialog); gives
    up after `tries` polls, so a missing dialog fails the test instead of hanging it."""
    def click(left=tries):
        box = next((w for w in QApplication.topLevelWidgets()
                    if isinstance(w, QMessageBox) and w.objectName() == "changed-on-disk" and w.isVisible()), None)
        if box is None:
            if left:
                QTimer.singleShot(50, lambda: click(left - 1))
            return
        seen.append(box.text())
        button = next(b for b in box.buttons() if b.text() == button_text)
        qtbot.mouseClick(button, Qt.LeftButton)
    QTimer.singleShot(0, click)


def test_a_change_on_disk_is_reloaded_when_nothing_is_pending(window, qtbot):
    project = _open(window, "outside")
    field = window.pages["Teacher"].form.fields["teacher.epochs"]
    _edit_outside(project, "epochs = 2", "epochs = 9")
    qtbot.waitUntil(lambda: window.model.cfg.teacher.epochs == 9, timeout=5000)
    assert field.editor.text() == "9"  # the form shows the file's new value
    assert "changed outside this window" in window.save_label.text()
    assert "epochs = 9" in project.file.read_text(encoding="utf-8")


def test_our_own_saves_do_not_count_as_outside_changes(window, qtbot):
    project = _open(window, "ours")
    window.model.set("seed", 5)
    assert window.model.save_now()
    qtbot.wait(400)  # the watcher sees our write; it must not reload or ask
    assert window.model.cfg.seed == 5 and window.save_label.text().startswith("Saved")
    assert "seed = 5" in project.file.read_text(encoding="utf-8")


def test_a_change_on_disk_during_a_pending_edit_asks_and_can_reload(window, qtbot):
    project = _open(window, "ask-reload")
    window.model.set("seed", 5)  # pending: autosave has not run yet
    window.model._timer.stop()
    seen = []
    _answer(qtbot, RELOAD, seen)
    _edit_outside(project, "epochs = 2", "epochs = 9")
    qtbot.waitUntil(lambda: window.model.cfg.teacher.epochs == 9, timeout=5000)
    assert seen and "changed outside this window" in seen[0]
    assert window.model.cfg.seed == 0 and not window.model.dirty  # our pending edit was dropped, as chosen
    assert "epochs = 9" in project.file.read_text(encoding="utf-8")


def test_a_change_on_disk_during_a_pending_edit_can_keep_ours_and_theirs(window, qtbot):
    project = _open(window, "ask-keep")
    window.model.set("seed", 5)
    window.model._timer.stop()
    seen = []
    _answer(qtbot, KEEP, seen)
    _edit_outside(project, "epochs = 2", "epochs = 9")
    qtbot.waitUntil(lambda: "seed = 5" in project.file.read_text(encoding="utf-8"), timeout=5000)
    text = project.file.read_text(encoding="utf-8")
    assert seen and "epochs = 9" in text  # ours saved, the other program's change to another value kept
    assert window.model.cfg.seed == 5 and window.model.cfg.teacher.epochs == 9
