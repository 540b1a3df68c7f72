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


def _finished_run(folder, k=10):
    """A run folder with a summary and the evaluation details of three models on k classes."""
    import json
    from kdstudio.core.store.projects import RunInfo
    model = {"accuracy": 0.93, "params": 1000, "bytes": 4000, "latency_ms_cpu_b1": 0.1}
    summary = {"status": "completed", "started": "2026-01-02T03:04:05", "device": "cpu",
               "distill": {"method": "kd"}, "teacher": {**model, "params": 10_000}, "student": model,
               "baseline": model, "kd_gain": 0.01,
               "compression": {"params_ratio": 10.0, "size_ratio": 10.0, "speedup_cpu_b1": 2.0, "accuracy_kept": 0.0}}
    details = _details(k)
    details["models"] = {m: details["models"]["student"] for m in ("teacher", "student", "baseline")}
    (folder / "evaluation.json").write_text(json.dumps(details), encoding="utf-8")
    return RunInfo(folder, "completed", "", summary)


def test_the_confusion_matrix_numbers_are_legible_on_the_evaluate_page_at_1280x800(window, qtbot, tmp_path):
    from PySide6.QtWidgets import QApplication
    from kdstudio.gui.pages.eval_charts import CELL_TEXT_PX
    window.open_initial()
    page = window.pages["Evaluate"]
    page.show_run(_finished_run(tmp_path))
    window.show_page("Evaluate")
    window.resize(1280, 800)
    for _ in range(6):
        QApplication.processEvents()
    charts = page.charts
    assert charts.currentIndex() == charts.cm_tab
    qtbot.waitUntil(lambda: charts.cell_pixels() > 0)
    assert charts.cell_pixels() >= CELL_TEXT_PX + 2
    assert charts._cm_texts and all(t.isVisible() for t in charts._cm_texts)


def test_class_names_are_whole_up_to_24_characters_and_elided_with_a_tooltip_beyond(qtbot):
    from kdstudio.gui import refguard
    from kdstudio.gui.pages.eval_charts import EvalCharts
    refguard.top_up()
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "a truck with a really long class name"]
    details = _details(10)
    details["class_names"] = names
    details["models"]["student"]["per_class"] = [{"name": n, "accuracy": 0.9} for n in names]
    charts = EvalCharts()
    qtbot.addWidget(charts)
    charts.resize(1000, 600)
    charts.show_results([("student", {"accuracy": 0.9})], details)
    charts.show()
    qtbot.waitExposed(charts)
    qtbot.waitUntil(lambda: charts.cell_pixels() > 0)
    left = charts.cm_plot.getPlotItem().getAxis("left")
    shown = [label for _, label in left._tickLevels[0]]
    assert shown[:9] == names[:9]                                # "automobile" whole, not cut at 8 or 10
    assert len(shown[9]) == 24 and shown[9].endswith("…")        # past 24 characters: elided …
    assert names[9] in left.toolTip()                            # … and whole in the tooltip
