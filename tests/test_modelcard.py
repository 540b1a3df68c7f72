"""Model-card plots drawn with Pillow: the PNGs exist, decode, have their size, show their data, and the card points
to them; a Pillow without FreeType still draws them with its bitmap font."""

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageFont, ImageStat

from kdstudio.core import config as config_mod
from kdstudio.core.outputs import charts, modelcard
from kdstudio.core.store.files import RunDir

CLASSES = [str(i) for i in range(10)]


def _run_folder(tmp_path, *, metrics=True, evaluation=True) -> RunDir:
    """A finished run as the engine leaves it: epoch records in metrics.jsonl and a confusion matrix."""
    rd = RunDir(tmp_path / "run")
    rd.exports.mkdir(parents=True)
    lines = []
    for k, (stage, epochs) in enumerate((("teacher", 3), ("distill", 5), ("baseline", 5))):
        for e in range(1, epochs + 1):
            lines.append({"kind": "step", "stage": stage, "epoch": e, "total": 9.0})  # steps are not plotted
            lines.append({"kind": "epoch", "stage": stage, "epoch": e, "total": (1 + k) / e,
                          "val_acc": 0.7 + 0.05 * k + 0.03 * e})
    if metrics:
        rd.metrics.write_text("".join(json.dumps(r) + "\n" for r in lines))
    if evaluation:
        confusion = [[36 if i == j else (2 if (i, j) == (4, 8) else 0) for j in range(10)] for i in range(10)]
        (rd.root / "evaluation.json").write_text(json.dumps(
            {"class_names": CLASSES, "models": {"student": {"confusion": confusion}}}))
    return rd


def _image(path) -> Image.Image:
    img = Image.open(path)
    img.load()  # decodes the whole file, not only the header
    return img.convert("RGB")


def _count(img: Image.Image, rgb, tol: int = 30) -> int:
    """Pixels within `tol` of a colour in every channel."""
    diff = np.abs(np.asarray(img, dtype=np.int16) - np.array(rgb, dtype=np.int16))
    return int((diff <= tol).all(axis=2).sum())


def test_card_writes_both_plots_and_points_to_them(tmp_path):
    rd = _run_folder(tmp_path)
    out = modelcard.write_model_card(rd, {}, config_mod.Config())
    exports = rd.exports
    assert out["images"] == [str(exports / modelcard.LOSS_PNG), str(exports / modelcard.CONFUSION_PNG)]
    card = json.loads((exports / modelcard.JSON).read_text())
    assert card["images"] == [modelcard.LOSS_PNG, modelcard.CONFUSION_PNG] and card["notes"] == []
    text = (exports / modelcard.MARKDOWN).read_text()
    assert "![loss_curves.png](loss_curves.png)" in text and "![confusion_matrix.png](confusion_matrix.png)" in text

    loss = _image(exports / modelcard.LOSS_PNG)
    assert loss.size == charts.LOSS_SIZE
    assert min(ImageStat.Stat(loss).var) > 100  # not blank
    for color in charts.PALETTE[:3]:  # one curve and one legend sample per stage
        assert _count(loss, color) > 300, color
    confusion = _image(exports / modelcard.CONFUSION_PNG)
    width, height = confusion.size
    assert width == charts.CONFUSION_SIZE[0] and 400 < height <= charts.CONFUSION_SIZE[1]
    assert min(ImageStat.Stat(confusion).var) > 100
    assert _count(confusion, charts._blue(1.0), 10) > 10 * 30 * 30  # ten full diagonal cells, each ≥ 30 px square


def test_missing_inputs_give_notes_instead_of_images(tmp_path):
    rd = _run_folder(tmp_path, metrics=False, evaluation=False)
    images, notes = modelcard.draw_images(rd, rd.exports)
    assert images == [] and any("loss-curve" in n for n in notes) and any("kdstudio eval" in n for n in notes)
    assert not list(rd.exports.glob("*.png"))


def test_plots_without_freetype_use_the_bitmap_font(tmp_path, monkeypatch):
    if not hasattr(ImageFont, "load_default_imagefont"):
        pytest.skip("this Pillow cannot hand out its bitmap font on its own")
    monkeypatch.setattr(charts.features, "check", lambda name: False)
    monkeypatch.setattr(charts.ImageFont, "load_default", lambda size=None: ImageFont.load_default_imagefont())
    rd = _run_folder(tmp_path)
    images, _ = modelcard.draw_images(rd, rd.exports)
    assert images == [modelcard.LOSS_PNG, modelcard.CONFUSION_PNG]
    loss = _image(rd.exports / modelcard.LOSS_PNG)
    assert loss.size == charts.LOSS_SIZE and min(ImageStat.Stat(loss).var) > 100
    assert _count(loss, charts.PALETTE[1]) > 300


def test_many_long_class_names_still_fit():
    n = 100
    matrix = [[50 if i == j else (i * j) % 7 for j in range(n)] for i in range(n)]
    names = [f"class_with_a_long_name_{i}" for i in range(n)]
    img = Image.open(io.BytesIO(charts.heatmap(matrix, names, "Confusion matrix: student"))).convert("RGB")
    assert img.size[0] == charts.CONFUSION_SIZE[0] and img.size[1] <= charts.CONFUSION_SIZE[1]
    assert min(ImageStat.Stat(img).var) > 100


def test_line_chart_with_gaps_single_points_and_no_values():
    c = charts.Canvas((400, 300))
    charts.line_chart(c, (0, 0, 400, 300), [("a", [1], [0.5]), ("b", [1, 2, 3], [1.0, None, float("nan")])],
                      "gaps", "loss")
    img = Image.open(io.BytesIO(c.png())).convert("RGB")
    assert img.size == (400, 300) and _count(img, charts.PALETTE[0]) > 20  # the lone point and its legend sample
    empty = charts.Canvas((400, 300))
    charts.line_chart(empty, (0, 0, 400, 300), [("a", [1, 2], [None, None])], "nothing", "accuracy", percent=True)
    assert min(ImageStat.Stat(Image.open(io.BytesIO(empty.png()))).var) > 0  # title and "no data"


@pytest.mark.parametrize("lo, hi, expect", [
    (0.07, 1.9, [0.0, 0.5, 1.0, 1.5, 2.0]),
    (0.8, 1.0, [0.8, 0.85, 0.9, 0.95, 1.0]),
    (1, 60, [0, 10, 20, 30, 40, 50, 60]),
    (3, 3, [2.4, 2.6, 2.8, 3.0, 3.2, 3.4, 3.6]),  # one value: a range around it
])
def test_nice_ticks_are_round_and_cover_the_range(lo, hi, expect):
    ticks = charts.nice_ticks(lo, hi, 6 if hi != 60 else 8)
    assert ticks == pytest.approx(expect)
