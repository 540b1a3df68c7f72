"""Live plot panel: opaque pre-blended grid, one repaint per update, staggered refresh of the three plots."""

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent, QObject  # noqa: E402


def _records(first: int, last: int, epochs: int = 10):
    """metrics.jsonl-style records of distill epochs first..last: steps, epoch means, accuracy, learning rate."""
    out = []
    for e in range(first, last + 1):
        for k in range(1, 5):
            out.append({"kind": "step", "stage": "distill", "epoch": e, "epochs": epochs, "step": k, "steps": 4,
                        "global_step": (e - 1) * 4 + k, "lr": 0.01 / e, "total": 1.0 / (e + k), "kd": 0.5 / e,
                        "ce": 0.4 / e, "teacher_ce": 0.1})
        out.append({"kind": "epoch", "stage": "distill", "epoch": e, "epochs": epochs, "val_acc": 0.5 + e / 100,
                    "lr": 0.01 / e, "total": 1.0 / e, "kd": 0.5 / e, "ce": 0.4 / e, "teacher_ce": 0.1})
    return out


def _series(epochs: int):
    """A RunSeries holding `epochs` epochs."""
    from kdstudio.gui.series import RunSeries
    return RunSeries("test").extend(_records(1, epochs))


class _PaintCounter(QObject):
    def __init__(self):
        super().__init__()
        self.count = 0

    def eventFilter(self, obj, event):
        if event.type() == QEvent.Paint:
            self.count += 1
        return False


@pytest.fixture
def panel(qtbot):
    from kdstudio.gui import refguard
    from kdstudio.gui.plots import PlotPanel
    refguard.top_up()
    p = PlotPanel()
    p.resize(900, 600)
    qtbot.addWidget(p)
    p.show()
    qtbot.waitExposed(p)
    return p


def test_grid_lines_are_opaque_blends_of_the_translucent_ones(panel):
    from PySide6.QtGui import QColor, QImage, QPainter, QPen
    axis = panel.plots["loss"].getPlotItem().getAxis("left")
    image = QImage(10, 10, QImage.Format_ARGB32)
    painter = QPainter(image)
    try:
        _, ticks, _ = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    assert ticks, "a plot with a grid draws grid lines"
    assert all(pen.color().alpha() == 255 for pen, _, _ in ticks)
    # a translucent pen becomes its colour composited onto the white background
    translucent = QColor(axis.tickPen().color())
    translucent.setAlpha(64)
    blended = axis._opaque(QPen(translucent)).color()
    a = 64 / 255
    for got, want in ((blended.red(), translucent.red()), (blended.green(), translucent.green()),
                      (blended.blue(), translucent.blue())):
        assert abs(got - (want * a + 255 * (1 - a))) <= 1
    assert blended.alpha() == 255
    # and the grid is drawn under the curves
    assert axis.zValue() < panel.plots["loss"].getPlotItem().getViewBox().zValue()


def test_one_repaint_per_plot_per_update(panel, qtbot):
    panel.show_series([_series(3)])
    panel.series[0].extend(_records(4, 9, epochs=30))  # a first growth may widen the axis labels: a layout pass
    panel.refresh()
    qtbot.wait(200)
    counters = {}
    for name, w in panel.plots.items():
        counters[name] = _PaintCounter()
        w.viewport().installEventFilter(counters[name])
    panel.series[0].extend(_records(10, 15, epochs=30))  # ranges grow: auto-range settles before the paint
    panel.refresh()
    qtbot.wait(200)
    assert all(c.count == 1 for c in counters.values()), {n: c.count for n, c in counters.items()}


def test_staggered_refresh_draws_loss_now_and_the_other_plots_later(panel, qtbot):
    from kdstudio.gui.plots import STAGGER_MS
    panel.series = [_series(5)]
    panel.refresh_staggered()

    def has_data(plot):
        return any(k[0] == plot and i.xData is not None and len(i.xData) for k, i in panel._items.items())

    assert has_data("loss") and not has_data("acc") and not has_data("lr")
    qtbot.waitUntil(lambda: has_data("acc") and has_data("lr"), timeout=STAGGER_MS * 2 + 2000)


def test_log_axis_labels_are_plain_numbers_thinned_to_fit(panel):
    import math
    axis = panel.plots["loss"].getPlotItem().getAxis("left")
    values = [math.log10(m * 0.1) for m in range(1, 10)] + [0.0]  # 0.1, 0.2 … 0.9, 1
    axis.logTickValues(-1.0, 0.0, 400, [])  # 400 px for one decade: room for every label
    assert axis.logTickStrings(values, 1.0, 1.0) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9",
                                                     "1"]
    axis.logTickValues(-1.0, 0.0, 60, [])  # 60 px: 0.1, 0.2, 0.5, 1 only
    assert [s for s in axis.logTickStrings(values, 1.0, 1.0) if s] == ["0.1", "0.2", "0.5", "1"]
    axis.logTickValues(-4.0, 0.0, 80, [])  # 20 px a decade: decades only
    assert [s for s in axis.logTickStrings(values, 1.0, 1.0) if s] == ["0.1", "1"]


def test_legends_can_be_hidden_and_shown(panel, qtbot):
    from PySide6.QtCore import Qt
    panel.show_series([_series(3)])
    strips = [box.legend for box in panel.boxes.values()]
    assert all("student CE" in panel.legend_names("loss") for _ in strips)
    assert all(strip.entries and "━━" in strip.text() for strip in strips)
    qtbot.mouseClick(panel.legends, Qt.LeftButton)
    assert not any("━━" in strip.text() for strip in strips) and "Loss" in strips[0].text()  # titles stay
    qtbot.mouseClick(panel.legends, Qt.LeftButton)
    assert all("━━" in strip.text() for strip in strips)


def _dkd_fitnet_records():
    """A run whose loss plot is crowded: teacher, dkd with fitnet (six distillation curves), baseline."""
    out = []
    for e in (1, 2, 3):
        for k in (1, 2):
            base = {"kind": "step", "epoch": e, "epochs": 3, "step": k, "steps": 2, "lr": 0.01 / e}
            out.append({**base, "stage": "teacher", "ce": 1.0 / e, "total": 1.0 / e})
            out.append({**base, "stage": "distill", "total": 1.0 / e, "ce": 0.5 / e, "tckd": 0.4 / e, "nckd": 0.3 / e,
                        "fitnet": 0.2 / e, "teacher_ce": 0.1})
            out.append({**base, "stage": "baseline", "ce": 0.9 / e, "total": 0.9 / e})
        for stage in ("teacher", "distill", "baseline"):
            out.append({"kind": "epoch", "stage": stage, "epoch": e, "epochs": 3, "val_acc": 0.5 + e / 10})
    return out


def test_legends_sit_above_the_plots_inside_the_panel_at_800x600(panel, qtbot):
    from PySide6.QtCore import QPoint, QRect
    from kdstudio.gui.series import RunSeries
    panel.resize(800, 600)
    panel.show_series([RunSeries("crowded").extend(_dkd_fitnet_records())])
    qtbot.wait(50)
    assert len(panel.legend_names("loss")) == 8  # teacher, baseline, total, ce, tckd, nckd, fitnet, teacher_ce
    bounds = panel.rect()
    for name, box in panel.boxes.items():
        strip = box.legend
        rect = QRect(strip.mapTo(panel, QPoint(0, 0)), strip.size())
        assert bounds.contains(rect), (name, rect, bounds)
        assert strip.height() >= strip.heightForWidth(strip.width()), name  # every line shown, none clipped
        view = panel.plots[name].getPlotItem().getViewBox()
        scene = view.mapRectToScene(view.boundingRect())
        top_left = panel.plots[name].mapFromScene(scene.topLeft())
        view_rect = QRect(panel.plots[name].mapTo(panel, top_left), scene.size().toSize())
        assert not rect.intersects(view_rect), (name, rect, view_rect)  # the legend covers no curve


def test_plots_wait_with_a_sentence_then_fit_their_first_points(panel, qtbot):
    from PySide6.QtCore import Qt
    from kdstudio.gui.series import RunSeries
    s = RunSeries("live")
    panel.show_series([s])
    assert all(box.waiting for box in panel.boxes.values())
    assert "waiting for the first step" in panel.boxes["loss"].placeholder.text()
    s.add({"kind": "step", "stage": "distill", "epoch": 1, "epochs": 5, "step": 1, "steps": 20, "lr": 0.0002,
           "total": 2.3, "ce": 2.0, "kd": 0.3})
    panel.refresh()
    assert not panel.boxes["loss"].waiting and not panel.boxes["lr"].waiting
    assert panel.boxes["acc"].waiting  # no validation accuracy before the first epoch ends: no empty axes
    (x0, x1), (y0, y1) = panel.plots["lr"].getPlotItem().getViewBox().viewRange()
    assert x0 >= 0 and 0 < y0 < 0.0002 < y1  # around the point: no negative epoch or learning rate
    qtbot.mouseClick(panel.auto_btn, Qt.LeftButton)
    assert 0 < panel.plots["lr"].getPlotItem().getViewBox().viewRange()[1][0] < 0.0002  # Auto-range keeps it
    s.add({"kind": "step", "stage": "distill", "epoch": 1, "epochs": 5, "step": 2, "steps": 20, "lr": 0.0004,
           "total": 2.1, "ce": 1.9, "kd": 0.2})
    panel.refresh()
    assert panel.plots["lr"].getPlotItem().getViewBox().autoRangeEnabled()[1]  # auto-range again with a spread


def _kd_run(label):
    from kdstudio.gui.series import RunSeries
    return RunSeries(label).extend(_records(1, 3))


def _dkd_run(label):
    from kdstudio.gui.series import RunSeries
    return RunSeries(label).extend(_dkd_fitnet_records())


def test_an_overlay_compares_one_term_across_methods_named_by_its_caller(panel, qtbot):
    from PySide6.QtCore import Qt
    panel.show_series([_kd_run("20260101-000000"), _dkd_run("20260102-000000")], ["kd run", ""])
    assert panel.compare.isVisible()
    terms = [panel.compare.itemData(i) for i in range(panel.compare.count())]
    assert terms == ["total", "ce", "teacher_ce"]  # only the terms both runs report
    assert panel.compare.currentData() == "ce"     # different methods: their totals add up different things
    assert panel.legend_names("loss") == ["kd run", "20260102-000000"]  # the caller's label, else the folder
    loss_keys = sorted(k for k in panel._items if k[0] == "loss")
    assert loss_keys == [("loss", 0, "ce", "step"), ("loss", 1, "ce", "step")]
    colours = [e[1] for e in panel.boxes["loss"].legend.entries]
    assert len(set(colours)) == 2
    panel.compare.setFocus()
    qtbot.keyClick(panel.compare, Qt.Key_Up)  # the user picks "total"
    assert panel.compare.currentData() == "total"
    assert sorted(k for k in panel._items if k[0] == "loss") == [("loss", 0, "total", "step"),
                                                                  ("loss", 1, "total", "step")]
    # runs of one method (a sweep's seeds) compare their totals; one run hides the chooser
    panel.show_series([_kd_run("seed-0"), _kd_run("seed-1")])
    assert panel.compare.currentData() == "total"
    panel.show_series([_kd_run("one")])
    assert not panel.compare.isVisible()
    # a run stopped before distilling has no loss to compare: the others are still compared
    from kdstudio.gui.series import RunSeries
    stopped = RunSeries("stopped").extend(r for r in _dkd_fitnet_records() if r["stage"] == "teacher")
    panel.show_series([stopped, _kd_run("kd"), _dkd_run("dkd")])
    assert panel.compare.currentData() == "ce" and panel.legend_names("loss") == ["kd", "dkd"]
    panel.show_series([stopped, RunSeries("not started")])
    assert panel.boxes["loss"].waiting and "None of these runs" in panel.boxes["loss"].placeholder.text()


def test_smoothing_is_tensorboards_ema_for_dense_points_and_leaves_epoch_spaced_points_alone():
    from kdstudio.gui.series import SMOOTHING_SPAN, Curve
    ys = [1.0, 0.5, 0.8, 0.2, 0.6, 0.1]
    dense = Curve()
    for i, y in enumerate(ys):
        dense.append(i * SMOOTHING_SPAN, y)
    last, want = 0.0, []
    for n, y in enumerate(ys, start=1):  # TensorBoard: debiased EMA, one weight per point
        last = last * 0.6 + 0.4 * y
        want.append(last / (1 - 0.6 ** n))
    assert dense.smoothed(0.6) == pytest.approx(want)
    # one point per epoch (each already an epoch's mean): a steep curve is not dragged epochs behind
    sparse = Curve()
    for i, y in enumerate([0.8, 0.13, 0.05, 0.02, 0.012]):
        sparse.append(i + 1.0, y)
    assert sparse.smoothed(0.6) == pytest.approx(sparse.y, rel=1e-3)


def test_only_a_curve_past_long_curve_points_is_downsampled_and_clipped_to_the_view(panel, monkeypatch):
    """Downsampling and clip-to-view rebuild a curve at every change of the view range (each auto-range of a
    growing plot); short curves skip that work, long ones keep it, and a curve switches once it grows long."""
    from kdstudio.gui import plots
    monkeypatch.setattr(plots, "LONG_CURVE", 30)  # _series(5): 20 step points; _series(10): 40
    panel.show_series([_series(5)])
    panel.refresh()
    steps = [i for k, i in panel._items.items() if i.xData is not None and len(i.xData) == 20]
    assert steps and all(not i.opts["clipToView"] and not i.opts["autoDownsample"] for i in steps)
    panel.series[0].extend(_records(6, 10, epochs=10))
    panel.refresh()
    long = [i for i in panel._items.values() if i.xData is not None and len(i.xData) == 40]
    assert long and all(i.opts["clipToView"] and i.opts["autoDownsample"] for i in long)
    epoch_means = [i for i in panel._items.values() if i.xData is not None and len(i.xData) == 10]
    assert epoch_means and all(not i.opts["clipToView"] for i in epoch_means)


def test_the_data_pages_class_chart_shows_names_whole_when_they_fit_and_elides_them_with_a_tooltip(qtbot):
    """The review found class names cut at 8 characters under the Data page's bars."""
    from kdstudio.gui import refguard
    from kdstudio.gui.pages.preview import DataPreview
    refguard.top_up()
    box = DataPreview()
    qtbot.addWidget(box)
    box.resize(1000, 340)
    box.show()
    qtbot.waitExposed(box)
    names = ["aircraft_carrier", "hot_air_balloon", "bus"]
    box.show_preview({"class_names": names, "counts": {"train": [5, 6, 7], "test": [1, 2, 3]}})
    axis = box.chart.getPlotItem().getAxis("bottom")
    qtbot.waitUntil(lambda: [t for _, t in axis._tickLevels[0]] == names)
    assert axis.toolTip() == ""
    six = [f"a_long_class_name_{i:02d}" for i in range(6)]  # ~70 px a group: elided, whole in the tooltip
    box.show_preview({"class_names": six, "counts": {"train": list(range(1, 7))}})
    qtbot.waitUntil(lambda: all(len(t) > 3 and t.endswith("…") and t.startswith("a_")
                                for _, t in axis._tickLevels[0]))
    assert "5: a_long_class_name_05" in axis.toolTip()
    many = [f"a_long_class_name_{i:02d}" for i in range(30)]
    box.show_preview({"class_names": many, "counts": {"train": list(range(1, 31))}})
    # 30 names of 20 characters in ~15 px each: the class indices, the names in the axis's tooltip
    qtbot.waitUntil(lambda: [t for _, t in axis._tickLevels[0]] == [str(i) for i in range(30)])
    assert "29: a_long_class_name_29" in axis.toolTip()
