"""Window-level plumbing: pages built when first opened, and the run controller the window owns."""

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402


def test_a_page_is_built_when_its_tab_is_first_opened(window, qtbot):
    from kdstudio.gui.main_window import PAGES, page_keys
    window.open_initial()
    assert [n for n in PAGES if window.pages.built(n) is not None] == ["Data"]  # the tab on screen
    bar = window.tabs.tabBar()
    qtbot.mouseClick(bar, Qt.LeftButton, pos=bar.tabRect(PAGES.index("Student")).center())
    assert window.current_page() is window.pages.built("Student") and window.pages.built("Student").isVisible()
    assert [n for n in PAGES if window.pages.built(n) is not None] == ["Data", "Student"]
    assert window.pages.built("Student").form.fields["student.width"].editor.text() == \
        str(window.model.cfg.student.width)  # built late, it shows the open project's config
    # the tabs' problem dots and goto_key know each page's keys without building it: the same keys it edits
    for name in PAGES:
        page = window.pages[name]
        assert page_keys(name) == (page.keys() if hasattr(page, "keys") else set(page.form.fields)), name


def test_a_problem_on_an_unopened_page_marks_its_tab_and_the_hint_opens_it(window, qtbot):
    window.open_initial()
    window.model.set("teacher.epochs", 0)
    assert window.pages.built("Teacher") is None and not window.tabs.tabIcon(1).isNull()
    window.goto_key("teacher.epochs")
    teacher = window.pages.built("Teacher")
    assert window.current_page() is teacher and teacher.form.fields["teacher.epochs"].has_problem


def test_run_actions_follow_the_window_s_run_controller(window):
    window.open_initial()
    run = window.run
    assert run.state == "idle" and run.start_act.isEnabled() and not run.stop_act.isEnabled()
    assert run.start_act in window.menuBar().actions()[2].menu().actions()  # the Run menu
    assert run.start_act.shortcut().toString() == "Ctrl+R" and run.stop_act.shortcut().toString() == "Ctrl+."
    window.model.set("teacher.epochs", 0)
    assert not run.start_act.isEnabled() and "teacher.epochs" in run.blocker()
    assert run.start() is False and not run.running
    assert window.pages.built("Train") is None
