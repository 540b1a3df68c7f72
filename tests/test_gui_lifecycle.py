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


def test_the_window_shows_first_then_builds_its_other_pages_while_idle(window, qtbot, monkeypatch):
    from kdstudio.gui import prebuild
    from kdstudio.gui.main_window import PAGES
    window.open_initial()
    built = lambda: [n for n in PAGES if window.pages.built(n) is not None]  # noqa: E731
    window.prebuilder.start()
    assert built() == ["Data"]  # start returns at once: the window is on screen with only the page it shows
    order = []
    for name in PAGES:
        window.slots[name].built.connect(lambda _p, n=name: order.append(n))
    qtbot.waitUntil(lambda: len(built()) >= 3, timeout=30_000)
    monkeypatch.setattr(prebuild, "QUIET_MS", 3_600_000)  # from now on, any key holds the chain for an hour
    qtbot.keyClick(window.tabs.tabBar(), Qt.Key_Right)  # the person acts: no page is built while they do
    held = built()
    qtbot.wait(3 * prebuild.RETRY_MS)
    assert built() == held and len(held) < len(PAGES)
    monkeypatch.setattr(prebuild, "QUIET_MS", 0)
    with qtbot.waitSignal(window.prebuilder.done, timeout=30_000):
        pass
    assert built() == list(PAGES) and order == [n for n in PAGES if n != "Data"]  # one at a time, in tab order
    assert window.current_page() is window.pages.built("Teacher")  # the key switched tabs; nothing else moved
    teacher = window.pages.built("Teacher")
    assert teacher.form.fields["teacher.epochs"].editor.text() == str(window.model.cfg.teacher.epochs)


def test_no_page_is_built_ahead_while_a_run_goes(window, qtbot, monkeypatch):
    from kdstudio.gui.main_window import PAGES
    window.open_initial()
    busy = [True]
    monkeypatch.setattr(type(window.run), "running", property(lambda self: busy[0]))  # a run is in progress
    window.prebuilder.start()
    qtbot.wait(500)
    assert [n for n in PAGES if window.pages.built(n) is not None] == ["Data"]
    busy[0] = False  # the run has ended
    qtbot.waitUntil(lambda: not window.prebuilder.remaining(), timeout=30_000)


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
