"""GUI review 2: ratios said the right way round (a bigger or slower student), the Evaluate page fits a small
window, the Teacher/Student page on screen updates when a run ends, the runs list's buttons shrink to icons,
ElidedLabel is a shared widget."""

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from kdstudio.core.store.projects import RunInfo  # noqa: E402
from kdstudio.core.store.files import atomic_write_json  # noqa: E402
from kdstudio.gui.widgets import ElidedLabel, fmt_ratio_said, ratio_words  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402

WAIT_MS = 120_000


def _settle(window, width, height):
    window.resize(width, height)
    for _ in range(6):
        QApplication.processEvents()


def _summary(params_ratio: float, speedup: float) -> dict:
    """A finished run's summary.json with these teacher/student ratios (below 1: the student is bigger/slower)."""
    teacher = {"accuracy": 0.95, "params": 10_000, "bytes": 40_000, "latency_ms_cpu_b1": 0.2}
    student = {"accuracy": 0.93, "params": round(10_000 / params_ratio), "bytes": round(40_000 / params_ratio),
               "latency_ms_cpu_b1": 0.2 / speedup, "teacher_agreement": 0.97}
    return {"status": "completed", "started": "2026-01-02T03:04:05", "device": "cpu", "distill": {"method": "kd"},
            "teacher": teacher, "student": student, "baseline": {**student, "accuracy": 0.91}, "kd_gain": 0.02,
            "compression": {"params_ratio": params_ratio, "size_ratio": params_ratio, "speedup_cpu_b1": speedup,
                            "accuracy_kept": -0.02},
            # the engine's evaluation table: the one place the per-model ratios are computed
            "evaluation": {"reference": "teacher", "table": [
                {"model": "teacher", "params_ratio": 1.0, "speedup": {"cpu_b1": 1.0}},
                *({"model": m, "params_ratio": params_ratio, "speedup": {"cpu_b1": speedup}}
                  for m in ("student", "baseline"))]}}


def _cell(table, row: int, title: str) -> str:
    col = next(c for c in range(table.columnCount()) if table.horizontalHeaderItem(c).text() == title)
    return table.item(row, col).text()


# ---- ratios said the right way round ---------------------------------------------------------------------------

def test_ratio_words_turn_a_ratio_below_one_around():
    assert ratio_words(10.5, "smaller", "larger") == ("10.5×", "smaller")
    assert ratio_words(0.8, "smaller", "larger") == ("1.25×", "larger")
    assert ratio_words(1 / 1.3, "faster", "slower") == ("1.30×", "slower")
    assert ratio_words(0.25, "faster", "slower") == ("4.0×", "slower")
    assert ratio_words(0.999, "smaller", "larger") == ("1.0×", "smaller")  # never "1.00× larger"
    for nothing in (None, 0, -2.0, float("nan"), float("inf"), "x"):
        assert ratio_words(nothing, "smaller", "larger") == ("–", "")
    assert fmt_ratio_said(10.5, "smaller", "larger") == "10.5×"
    assert fmt_ratio_said(0.8, "smaller", "larger") == "1.25× larger"


def test_evaluate_says_larger_and_slower_for_a_student_bigger_than_its_teacher(window, tmp_path):
    page = window.pages["Evaluate"]
    window.show_page("Evaluate")
    _settle(window, 1024, 700)
    page.show_run(RunInfo(tmp_path, "completed", "", _summary(0.8, 1 / 1.3)))
    _settle(window, 1024, 700)
    table = page.table  # every column whole, also the last ("1.30× slower" was squeezed and wrapped)
    assert all(table.columnWidth(c) >= table.sizeHintForColumn(c) for c in range(table.columnCount()))
    assert (page.smaller.caption.text(), page.smaller.value.text()) == ("Larger", "1.25×")
    assert "smaller" not in page.smaller.detail.text() and page.smaller.detail.text().endswith("file 1.25× larger")
    assert (page.faster.caption.text(), page.faster.value.text()) == ("Slower (CPU, batch 1)", "1.30×")
    assert _cell(page.table, 1, "Smaller") == "1.25× larger"
    assert _cell(page.table, 1, "Faster (b=1)") == "1.30× slower"

    page.show_run(RunInfo(tmp_path, "completed", "", _summary(10.5, 8.4)))  # the usual way round again
    assert (page.smaller.caption.text(), page.smaller.value.text()) == ("Smaller", "10.5×")
    assert page.smaller.detail.text().endswith("file 10.5× smaller")
    assert (page.faster.caption.text(), page.faster.value.text()) == ("Faster (CPU, batch 1)", "8.4×")
    assert _cell(page.table, 1, "Smaller") == "10.5×" and _cell(page.table, 1, "Faster (b=1)") == "8.4×"


def test_run_history_says_larger_and_slower(window):
    window.open_initial()
    project = window.model.project
    atomic_write_json(project.new_run_dir() / "summary.json", _summary(0.8, 1 / 1.3))
    history = window.train.history
    history.reload(project)
    item = history.tree.topLevelItem(0)
    heads = [history.tree.headerItem().text(c) for c in range(history.tree.columnCount())]
    assert item.text(heads.index("Smaller")) == "1.25× larger"
    assert item.text(heads.index("Faster")) == "1.30× slower"


# ---- the Evaluate page at small windows --------------------------------------------------------------------------

def _evaluate_with_results(window, tmp_path):
    window.open_initial()
    page = window.pages["Evaluate"]
    page.show_run(RunInfo(tmp_path, "completed", "", _summary(10.5, 8.4)))
    window.show_page("Evaluate")
    return page


def _nothing_cut(page):
    """No horizontal scrolling, every card as wide as it needs, the settings' help text whole."""
    content = page.widget()
    assert content.minimumSizeHint().width() <= page.viewport().width()
    assert page.horizontalScrollBar().maximum() == 0
    for card in page.cards.cards:
        assert card.width() >= card.minimumSizeHint().width()
    assert page.form.height() >= page.form.minimumSizeHint().height()
    for field in page.form.fields.values():
        assert field.help.height() >= field.help.heightForWidth(field.help.width()), field.key


def test_evaluate_fits_800x600_and_stacks_its_lower_part(window, tmp_path):
    page = _evaluate_with_results(window, tmp_path)
    _settle(window, 800, 600)
    assert page.minimumSizeHint().width() <= 400  # it scrolls instead of holding the window (and the TOML dock)
    _nothing_cut(page)
    assert page.lower.orientation() == Qt.Vertical  # charts above the summary and the settings
    assert page.charts.height() >= 300 and page.tree.height() >= 150
    assert page.cards.columns == 4
    _settle(window, 1024, 700)
    _nothing_cut(page)
    _settle(window, 1440, 900)
    _nothing_cut(page)
    assert page.lower.orientation() == Qt.Horizontal and page.cards.columns == 4
    assert page.verticalScrollBar().maximum() == 0  # a big window shows it all without scrolling


def test_evaluate_beside_the_toml_dock_in_a_small_window(window, tmp_path, qtbot):
    page = _evaluate_with_results(window, tmp_path)
    _settle(window, 800, 600)
    window.toml_dock.show()
    qtbot.waitUntil(lambda: window.toml_dock.width() >= 240, timeout=5000)
    _settle(window, 800, 600)
    assert page.width() < 600
    _nothing_cut(page)
    # The dock takes half of the window: one card to a row. (Before the pages were built lazily, the Train page's
    # minimum width held every tab, and the dock got only ~250 px.)
    assert window.toml_dock.width() >= 380 and page.cards.columns == 1
    window.resizeDocks([window.toml_dock], [250], Qt.Horizontal)  # the user narrows the dock
    _settle(window, 800, 600)
    assert 500 < page.width() < 600
    _nothing_cut(page)
    assert page.cards.columns == 2  # two cards to a row instead of four cut-off ones


# ---- the page on screen when a run ends --------------------------------------------------------------------------

def test_teacher_page_on_screen_says_trained_when_the_run_ends(window, qtbot):
    window.panel.new_project("Refresh")
    window.model.replace(tiny_config(**{"distill.epochs": 1, "baseline.enabled": False}))
    window.model.save_now()
    window.hub.load_catalog()
    teacher = window.pages["Teacher"]
    window.show_page("Teacher")
    qtbot.waitUntil(lambda: teacher.params_card.value.text() not in ("–", "…"), timeout=WAIT_MS)
    assert teacher.params_card.detail.text() == "built for this data, not yet trained"
    with qtbot.waitSignal(window.run.finished, timeout=WAIT_MS) as finished:
        window.activateWindow()
        qtbot.keyClick(window, Qt.Key_R, Qt.ControlModifier)  # Ctrl+R: the page on screen stays the Teacher page
    assert finished.args[0]["status"] == "completed"
    [run] = window.model.project.runs()
    assert window.current_page() is teacher  # no page switch: the run's end updated the page on screen
    assert window.pages.built("Train") is None  # the window ran it: the Train page was never needed
    assert teacher.params_card.detail.text().startswith(f"trained in run {run.name}: test accuracy")
    assert teacher.other_card.detail.text().startswith(f"distilled in run {run.name}")
    # the Train page, opened for the first time after the run, shows the run as if it had watched it
    window.show_page("Train")
    train = window.train
    assert train.bar.format() == "completed" and train.status.text().startswith("Done: student")
    log = train.live_log.toPlainText()
    assert log.index("Starting run") < log.index("── distill ──") < log.index("Run completed.")
    assert [r.path for r in train.history.selected()] == [run.path] and train.plots.curve_count() > 0
    assert train.logs.currentWidget() is train.live_log  # this session's log of that run, not its log.txt


# ---- the runs list's buttons -------------------------------------------------------------------------------------

def test_run_buttons_become_icons_with_tooltips_when_narrow(qtbot):
    from PySide6.QtWidgets import QWidget

    from kdstudio.gui.pages.history import BUTTON_TEXTS, RunHistory
    host = QWidget()  # inside a page, as on the Train page (a window would keep its layout's minimum width)
    qtbot.addWidget(host)
    history = RunHistory(host)
    host.resize(700, 400)
    host.show()
    history.resize(600, 300)
    QApplication.processEvents()
    assert [b.text() for b in history.buttons] == list(BUTTON_TEXTS) and not history.icons_only
    wide = history._row_width(False)
    assert history.minimumSizeHint().width() < wide - 100  # it no longer holds the Train page wide
    history.resize(history.minimumSizeHint().width(), 300)
    QApplication.processEvents()
    assert history.icons_only
    for b, text in zip(history.buttons, BUTTON_TEXTS):
        assert b.text() == "" and not b.icon().isNull() and b.toolTip().startswith(text)
        assert b.width() >= b.sizeHint().width() and b.geometry().right() <= history.width()
    history.resize(600, 300)
    QApplication.processEvents()
    assert [b.text() for b in history.buttons] == list(BUTTON_TEXTS) and history.buttons[0].icon().isNull()


def test_elided_label_is_a_shared_widget(window):
    assert isinstance(window.title, ElidedLabel) and isinstance(window.path_label, ElidedLabel)
