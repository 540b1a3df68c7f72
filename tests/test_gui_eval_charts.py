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
    from kdstudio.gui.pages.eval_charts import EvalCharts
    refguard.top_up()
    charts = EvalCharts()
    qtbot.addWidget(charts)
    charts.show_results([("student", {"accuracy": 0.9})], _details())
    charts.setCurrentIndex(charts.cm_tab)
    charts.resize(300, 260)
    charts.show()
    qtbot.waitExposed(charts)
    qtbot.waitUntil(lambda: 0 < charts.cell_pixels() < 26)
    assert charts._cm_texts and not any(t.isVisible() for t in charts._cm_texts)
    charts.resize(900, 800)
    qtbot.waitUntil(lambda: charts.cell_pixels() >= 34)
    assert all(t.isVisible() for t in charts._cm_texts)
