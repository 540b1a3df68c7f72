"""Evaluate page's gallery of misclassified images; Teacher page: drop a model file, count a file teacher."""

import warnings
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402

from tests.helpers import tiny_config  # noqa: E402

WAIT_MS = 60_000


def _project_with_run(window, cfg, name="Extras"):
    """A project whose runs/ folder holds one finished run of cfg (run by the core, not through the window)."""
    from kdstudio.core.pipeline import engine
    window.panel.new_project(name)
    window.model.replace(cfg)
    window.model.save_now()
    project = window.model.project
    assert engine.run(cfg.copy(), project.new_run_dir())["status"] == "completed"
    [run] = project.runs()
    window.pages["Evaluate"].show_run(run)
    return run


def _show_gallery(window):
    window.show_page("Evaluate")
    charts = window.pages["Evaluate"].charts
    charts.setCurrentWidget(charts.gallery)
    return charts.gallery


def test_gallery_shows_misclassified_digits_and_switches_model(window, qtbot):
    _project_with_run(window, tiny_config(**{"distill.epochs": 1}))
    gallery = _show_gallery(window)
    assert gallery.model_box.currentData() == "student"
    assert {gallery.model_box.itemData(i) for i in range(gallery.model_box.count())} >= {"teacher", "baseline"}
    qtbot.waitUntil(lambda: gallery.grid.count() > 0, timeout=WAIT_MS)
    assert 0 < gallery.grid.count() <= 64
    first = gallery.examples[0]
    assert gallery.captions()[0] == f"{first['true_name']} → {first['pred_name']} ({first['confidence'] * 100:.0f}%)"
    assert first["true"] != first["pred"]
    icon = gallery.grid.item(0).icon().pixmap(64, 64)
    assert (icon.width(), icon.height()) == (64, 64)  # 8×8 digits scaled up 8×
    assert "misclassified" in gallery.message.text()
    gallery.model_box.setCurrentIndex(gallery.model_box.findData("teacher"))
    qtbot.waitUntil(lambda: gallery.grid.count() > 0 and gallery._shown_key[1] == "teacher", timeout=WAIT_MS)
    assert "Teacher" in gallery.message.text()


def test_gallery_says_so_for_feature_vectors(window, qtbot, tmp_path):
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    y = (x[:, 0] + 0.3 * rng.normal(size=400) > 0).astype(int)  # learnable, with a few mistakes left
    csv = tmp_path / "features.csv"
    csv.write_text("a,b,c,d,e,f,label\n" + "\n".join(",".join(f"{v:.4f}" for v in r) + f",{c}"
                                                      for r, c in zip(x, y)))
    cfg = tiny_config(**{"data.source": "csv", "data.path": str(csv), "teacher.arch": "mlp",
                         "teacher.width": 32, "teacher.epochs": 6, "teacher.lr": 0.01,
                         "teacher.skip_sanity_check": True, "distill.epochs": 1, "baseline.enabled": False})
    _project_with_run(window, cfg, name="Features")
    gallery = _show_gallery(window)
    qtbot.waitUntil(lambda: "not images" in gallery.message.text(), timeout=WAIT_MS)
    assert gallery.grid.count() == 0


def _drop(page, path: str):
    """Drag enter + drop of one local file, through the page's drop filter (QApplication only routes drag
    events while the platform runs a real drag, so they are handed to the filter as Qt would)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(path)])
    enter = QDragEnterEvent(QPointF(20, 20), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    assert page.file_drop.eventFilter(page.widget(), enter) and enter.isAccepted()
    drop = QDropEvent(QPointF(20, 20), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    assert page.file_drop.eventFilter(page.widget(), drop) and drop.isAccepted()


def test_dropping_a_model_file_sets_the_teacher_and_counts_it(window, qtbot, tmp_path):
    import torch

    from kdstudio.core import models
    from kdstudio.gui.widgets import fmt_int
    window.panel.new_project("Drop")
    cfg = tiny_config()
    window.model.replace(cfg)
    window.hub.load_catalog()
    qtbot.waitUntil(lambda: window.hub.catalog is not None, timeout=WAIT_MS)
    page = window.pages["Teacher"]
    window.show_page("Teacher")

    _drop(page, str(tmp_path / "notes.txt"))
    assert window.model.cfg.teacher.source == "train"
    assert "not a model file" in page.drop.message.text() and page.drop.message.isVisible()

    teacher = models.build("cnn", 10, (1, 8, 8), 8, 2)
    path = tmp_path / "teacher.pt"
    torch.save(teacher.state_dict(), path)
    _drop(page, str(path))
    assert (window.model.cfg.teacher.source, window.model.cfg.teacher.path) == ("file", str(path))
    assert page.form.fields["teacher.path"].editor.text() == str(path)
    assert str(path) in page.drop.message.text()
    want = fmt_int(models.count_params(teacher))
    qtbot.waitUntil(lambda: page.params_card.value.text() == want, timeout=WAIT_MS)
    assert "teacher.pt" in page.params_card.detail.text()
    assert page.ratio_card.value.text().endswith("×")
    assert window.pages["Student"].other_card.value.text() == want

    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a model at all")
    _drop(page, str(bad))
    qtbot.waitUntil(lambda: page.params_card.value.text() == "–" and "broken.pt" in page.params_card.detail.text(),
                    timeout=WAIT_MS)
    assert page.ratio_card.value.text() == "–"
    assert window.pages["Student"].params_card.value.text() not in ("–", "…")  # the student is still counted


def test_onnx_teacher_says_its_count_is_not_available(window, qtbot, tmp_path):
    pytest.importorskip("onnxruntime")
    import torch

    from kdstudio.core import models
    window.panel.new_project("Onnx")
    window.model.replace(tiny_config())
    window.hub.load_catalog()
    qtbot.waitUntil(lambda: window.hub.catalog is not None, timeout=WAIT_MS)
    path = tmp_path / "teacher.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter: no onnxscript needed
        torch.onnx.export(models.build("mlp", 10, (1, 8, 8), 16, 1).eval(), torch.zeros(1, 1, 8, 8), str(path),
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                          dynamo=False)
    page = window.pages["Teacher"]
    page.drop_files([str(path)])
    qtbot.waitUntil(lambda: "ONNX teacher: parameters not available" in page.params_card.detail.text(),
                    timeout=WAIT_MS)
    assert Path(window.model.cfg.teacher.path).suffix == ".onnx"
