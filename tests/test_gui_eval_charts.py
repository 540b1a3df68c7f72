"""Evaluate page charts: confusion-matrix cell numbers appear only when a cell can hold them."""

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")


def _details(k=10):
    confusion = [[50 if i == j else (3 if j == (i + 1) % k else 0) for j in range(k)] for i in range(k)]
    per_class = [{"name": str(i), "accuracy": 0.9} for i in range(k)]
    return {"class_names": [str(i) for i in range(k)],
            "models": {"student": {"confusion": confusion, "per_class": per_class}}}


def test_cell_numbers_hide_on_a_small_matrix_and_return_on_a_large_one(qtbot):
    from kdstudio.gui import refguard
    from kdstudio.gui.pages.eval_charts import CELL_TEXT_PX, EvalCharts
    refguard.top_up()
    charts = EvalCharts()
    qtbot.addWidget(charts)
    charts.show_results([("student", {"accuracy": 0.9})], _details())
    charts.setCurrentIndex(charts.cm_tab)
    charts.resize(300, 260)
    charts.show()
    qtbot.waitExposed(charts)
    qtbot.waitUntil(lambda: 0 < charts.cell_pixels() < CELL_TEXT_PX)
    assert charts._cm_texts and not any(t.isVisible() for t in charts._cm_texts)
    charts.resize(900, 800)
    qtbot.waitUntil(lambda: charts.cell_pixels() >= CELL_TEXT_PX)
    assert all(t.isVisible() for t in charts._cm_texts)


def test_a_single_mistake_is_clearly_visible_among_many_correct_answers():
    import numpy as np
    from kdstudio.gui.pages.eval_charts import MISTAKE_RGB, confusion_colours
    cm = np.diag([40.0] * 10)
    cm[5, 9] = 1  # one error next to 400 correct answers
    rgb, level = confusion_colours(cm)
    assert level[5, 9] >= 0.3 and level[0, 1] == 0 and level[0, 0] == 1
    assert tuple(rgb[0, 1]) == (255, 255, 255)           # no mistake: white
    assert rgb[5, 9, 0] > rgb[5, 9, 2] + 40              # the mistake is red, not a faint blue
    assert np.allclose(255 - (255 - MISTAKE_RGB) * level[5, 9], rgb[5, 9], atol=1)


def test_accuracy_bars_use_the_whole_percent_scale(qtbot):
    from kdstudio.gui import refguard
    from kdstudio.gui.pages.eval_charts import EvalCharts
    refguard.top_up()
    charts = EvalCharts()
    qtbot.addWidget(charts)
    charts.show_results([("teacher", {"accuracy": 0.997}), ("student", {"accuracy": 0.992})], _details())
    low, high = charts.acc.getPlotItem().getViewBox().viewRange()[1]
    assert low == 0 and high == 100
