"""A run is called by its name everywhere: renamed in the runs table (a double-click and typing), the Evaluate page's
header and the Export page's run picker say the new name, the start time small beside it."""

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402

from kdstudio.core.store.files import RunDir  # noqa: E402
from kdstudio.gui.pages.compare import CompareDialog  # noqa: E402
from tests.test_gui_compare import rename_by_typing, settle  # noqa: E402
from tests.test_gui_gain import HELPED, NOISE, _finished_run  # noqa: E402


def test_a_rename_in_the_runs_table_shows_on_the_evaluate_and_export_pages(window, qtbot):
    window.panel.new_project("Names")
    project = window.model.project
    folders = [_finished_run(project, "20260102-030401", HELPED), _finished_run(project, "20260102-030402", NOISE)]
    for folder in folders:  # a distilled student: the Export page lists the run
        RunDir(folder).checkpoint("distill").parent.mkdir(parents=True, exist_ok=True)
        RunDir(folder).checkpoint("distill").write_bytes(b"weights")
    window.show_page("Export")
    export = window.pages["Export"]
    window.show_page("Evaluate")
    evaluate = window.pages["Evaluate"]
    window.show_page("Train")
    history = window.train.history
    history.reload(project)
    settle()
    [item] = [history.tree.topLevelItem(i) for i in range(2)
              if history.tree.topLevelItem(i).data(0, Qt.UserRole).path == folders[1]]
    [run] = [r for r in project.runs() if r.path == folders[1]]
    window._show_on_evaluate(run)  # what a click on its row shows
    assert "T=4 cosine" not in evaluate.heading.text()

    history.tree.selectAll()
    qtbot.mouseClick(history.compare_btn, Qt.LeftButton)  # a comparison open while the run is renamed
    assert history.compare_dialog.isVisible()
    history.select_paths([folders[1]])
    rename_by_typing(qtbot, history.tree, item, "T=4 cosine")
    assert "T=4 cosine" in history.compare_dialog.windowTitle() and history.compare_dialog.isVisible()
    assert "<b>T=4 cosine</b>" in evaluate.heading.text()
    assert "02 Jan 03:04" in evaluate.heading.text()  # the start time, small beside the name
    texts = [export.run_combo.itemText(i) for i in range(export.run_combo.count())]
    assert any(t.startswith("T=4 cosine  ·  02 Jan 03:04  ·  student") for t in texts), texts
    export.run_combo.setCurrentIndex(next(i for i, t in enumerate(texts) if t.startswith("T=4 cosine")))
    assert "run T=4 cosine" in export.status.text()

    rename_by_typing(qtbot, history.tree, item, "")  # no name: the start time is what it is called again
    assert evaluate.heading.text() == "<b>02 Jan 03:04</b>"
    older, newer = sorted(project.runs(), key=lambda r: r.path.name)
    dialog = CompareDialog(older, newer, "first", "second")
    qtbot.addWidget(dialog)
    intro = dialog.findChildren(type(evaluate.heading))[0].text()
    assert "A: <b>first</b> (02 Jan 03:04, completed)" in intro
