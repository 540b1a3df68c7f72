"""Checks before Start (issue 16 §4): what only building the models or reading the data finds (a student arch
typo, a CSV without its label column) disables Start with the reason and outlines the field, found in the
background and debounced; a student larger than its teacher is warned of; the Data page drops its old numbers
the moment the source changes; the alpha help follows the method; the TOML editor scrolls to the line it marks."""

import os

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from kdstudio.gui import tasks  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402

WAIT_MS = 120_000
SHOTS = os.environ.get("KDSTUDIO_SHOTS")  # a folder: the tests save what they show there, to be looked at


def _shot(widget, name: str, size=None) -> None:
    if SHOTS:
        win = widget.window()
        if size:
            win.resize(*size)
        for _ in range(8):
            QApplication.processEvents()
        win.grab().save(os.path.join(SHOTS, f"{name}.png"))


def _open(window, qtbot, cfg, name="Checks"):
    """A new project holding `cfg`, with torch loaded and its first check done."""
    window.panel.new_project(name)
    window.model.replace(cfg)
    window.model.save_now()
    window.hub.load_catalog()
    qtbot.waitUntil(lambda: window.hub.info is not None or window.hub.failure is not None, timeout=WAIT_MS)


def _mosaic_shown(page) -> bool:
    return not page.preview.image.pixmap().isNull()


def _type_into(qtbot, line_edit, text: str) -> None:
    """Select what the box holds and type `text` over it, as a person would, then press Enter."""
    line_edit.setFocus()
    line_edit.selectAll()
    qtbot.keyClicks(line_edit, text)
    qtbot.keyClick(line_edit, Qt.Key_Return)


def test_a_student_arch_typo_disables_start_and_outlines_the_field(window, qtbot):
    _open(window, qtbot, tiny_config())
    start = window.run.start_act
    assert start.isEnabled()
    window.show_page("Student")
    field = window.pages["Student"].form.fields["student.arch"]
    _type_into(qtbot, field.editor.lineEdit(), "mpl")
    qtbot.waitUntil(lambda: not start.isEnabled(), timeout=WAIT_MS)
    assert window.model.cfg.student.arch == "mpl"
    assert field.has_problem and "Unknown architecture 'mpl'" in field.problem.text()
    assert field.editor.property("invalid") is True  # outlined
    assert "student.arch" in window.run.blocker() and "mpl" in window.run.blocker()
    _shot(field, "student-arch-typo-1280", (1280, 800))
    window.show_page("Train")
    hint = window.train.controls.hint
    assert hint.isVisible() and "Unknown architecture" in hint.text()
    _shot(hint, "train-bad-arch-1280", (1280, 800))
    _shot(hint, "train-bad-arch-800", (800, 600))
    window.show_page("Student")
    _type_into(qtbot, field.editor.lineEdit(), "mlp")
    qtbot.waitUntil(start.isEnabled, timeout=WAIT_MS)
    assert not field.has_problem and not field.editor.property("invalid")


def test_typing_a_value_starts_one_check_not_one_per_key(window, qtbot, monkeypatch):
    _open(window, qtbot, tiny_config())
    calls = []
    real = tasks.model_info
    monkeypatch.setattr(tasks, "model_info", lambda cfg: calls.append(cfg.student.width) or real(cfg))
    window.show_page("Student")
    width = window.pages["Student"].form.fields["student.width"].editor
    width.setFocus()
    width.selectAll()
    qtbot.keyClicks(width, "24")  # two edits of the config (2, then 24), a moment apart
    qtbot.waitUntil(lambda: bool(calls) and window.hub.info is not None, timeout=WAIT_MS)
    qtbot.wait(500)  # longer than the debounce: a second check would have started by now
    assert calls == [24]


def test_a_csv_without_its_label_column_disables_start_on_that_field(window, qtbot, tmp_path):
    table = tmp_path / "rows.csv"
    table.write_text("a,b,target\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(80)), encoding="utf-8")
    cfg = tiny_config(**{"data.source": "csv", "data.path": str(table), "data.label_column": "label",
                         "data.batch_size": 8, "teacher.arch": "mlp"})
    _open(window, qtbot, cfg)
    qtbot.waitUntil(lambda: not window.run.start_act.isEnabled(), timeout=WAIT_MS)
    window.show_page("Data")
    field = window.pages["Data"].form.fields["data.label_column"]
    assert field.has_problem and "no column 'label'" in field.problem.text()
    _type_into(qtbot, field.editor, "target")
    qtbot.waitUntil(window.run.start_act.isEnabled, timeout=WAIT_MS)
    assert not field.has_problem


def test_an_unreadable_image_disables_start_until_it_is_skipped(window, qtbot, tmp_path):
    np = pytest.importorskip("numpy")
    image = pytest.importorskip("PIL.Image")
    for c in ("cat", "dog"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(12):
            image.fromarray((np.random.default_rng(i).random((8, 8)) * 255).astype("uint8")).save(
                tmp_path / "imgs" / c / f"{i}.png")
    (tmp_path / "imgs" / "cat" / "broken.png").write_bytes(b"not a png")
    cfg = tiny_config(**{"data.source": "folder", "data.path": str(tmp_path / "imgs"), "data.batch_size": 4})
    _open(window, qtbot, cfg)
    qtbot.waitUntil(lambda: not window.run.start_act.isEnabled(), timeout=WAIT_MS)
    window.show_page("Data")
    page = window.pages["Data"]
    path = page.form.fields["data.path"]
    assert path.has_problem and "broken.png' cannot be read" in path.problem.text()
    skip = page.form.fields["data.skip_unreadable"].editor
    skip.setFocus()
    qtbot.keyClick(skip, Qt.Key_Space)  # tick "skip unreadable images"
    assert window.model.cfg.data.skip_unreadable is True
    qtbot.waitUntil(window.run.start_act.isEnabled, timeout=WAIT_MS)
    assert not path.has_problem


def test_a_student_larger_than_its_teacher_is_warned_of_but_may_run(window, qtbot):
    _open(window, qtbot, tiny_config(**{"student.width": 512}))
    window.show_page("Train")
    warning = window.train.controls.warning
    qtbot.waitUntil(warning.isVisible, timeout=WAIT_MS)
    assert "more parameters than its teacher" in warning.text() and "0." not in warning.text().split("×")[0]
    assert window.run.start_act.isEnabled()  # a warning, not a problem
    _shot(warning, "train-larger-student-800", (800, 600))
    window.show_page("Student")
    _type_into(qtbot, window.pages["Student"].form.fields["student.width"].editor, "8")
    window.show_page("Train")
    qtbot.waitUntil(lambda: not warning.isVisible(), timeout=WAIT_MS)


def test_switching_the_data_source_drops_the_old_preview_and_counts_at_once(window, qtbot):
    _open(window, qtbot, tiny_config())
    window.show_page("Data")
    page = window.pages["Data"]
    qtbot.waitUntil(lambda: page.split_card.value.text() not in ("…", "–"), timeout=WAIT_MS)
    assert page.card.value.text() == "digits" and _mosaic_shown(page)
    combo = page.form.fields["data.source"].editor
    combo.setFocus()
    qtbot.keyClicks(combo, "synthetic")  # the combo box's type-ahead, as with the keyboard
    assert window.model.cfg.data.source == "synthetic"
    # no event loop has run: the old numbers are already gone
    assert page.card.value.text() == "…" and page.split_card.value.text() == "…"
    assert not _mosaic_shown(page) and page.preview.image.text() == "Reading the data…"
    assert page.preview.chart.isHidden()  # no axis still scaled to the old class counts
    _shot(page, "data-after-switch-800", (800, 600))
    qtbot.waitUntil(lambda: page.card.value.text() == "synthetic", timeout=WAIT_MS)
    assert page.split_card.value.text() == f"{window.model.cfg.data.synthetic_samples:,}" and _mosaic_shown(page)
    _shot(page, "data-synthetic-1280", (1280, 800))


def test_the_alpha_help_follows_the_method(window, qtbot):
    _open(window, qtbot, tiny_config())
    window.show_page("Method")
    page = window.pages["Method"]
    alpha = page.form.fields["distill.alpha"]
    assert "1 − alpha weights cross-entropy" in alpha.help.text()
    combo = page.form.fields["distill.method"].editor
    combo.setFocus()
    qtbot.keyClicks(combo, "dkd")
    assert window.model.cfg.distill.method == "dkd"
    assert window.model.cfg.distill.alpha == 1.0 and alpha.editor.text() == "1"  # dkd's own default
    assert "TCKD" in alpha.help.text() and "cross-entropy keeps weight 1" in alpha.help.text()


def test_the_toml_editor_scrolls_to_the_error_it_marks(window, qtbot):
    _open(window, qtbot, tiny_config(), name="Long")
    window.resize(800, 600)
    window.toml_dock.show()
    panel = window.toml
    editor = panel.editor
    text = editor.toPlainText() + "".join(f"# note {i}\n" for i in range(200)) + "oops = = 1\n"
    editor.setPlainText(text)
    editor.verticalScrollBar().setValue(0)  # the top of the file on screen
    qtbot.mouseClick(panel.apply_btn, Qt.LeftButton)
    line = editor.marked_line()
    assert line == len(text.splitlines())  # the last line, far below the first screen
    assert editor.line_visible(line) and editor.verticalScrollBar().value() > 0
    _shot(editor, "toml-error-800", (800, 600))


def test_the_page_tabs_keep_their_names_beside_the_toml_editor_at_800x600(window, qtbot):
    _open(window, qtbot, tiny_config(), name="Tabs")
    window.resize(800, 600)
    window.toml_dock.show()
    qtbot.waitUntil(lambda: window.toml_dock.width() >= 240, timeout=5000)
    for _ in range(6):
        QApplication.processEvents()
    bar = window.tabs.tabBar()
    for i in range(bar.count()):  # every tab as wide as its whole name: scrolled to, never shortened
        assert bar.tabRect(i).width() >= bar.fontMetrics().horizontalAdvance(bar.tabText(i))
    _shot(bar, "tabs-toml-800", (800, 600))
