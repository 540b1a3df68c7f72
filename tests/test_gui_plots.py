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


def test_legends_can_be_hidden_and_shown(panel):
    panel.show_series([_series(3)])
    legends = [w.getPlotItem().legend for w in panel.plots.values()]
    assert all(leg.isVisible() for leg in legends)
    panel.legends.setChecked(False)
    assert not any(leg.isVisible() for leg in legends)
    panel.legends.setChecked(True)
    assert all(leg.isVisible() for leg in legends)


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
