"""The Data page on a streamed folder: the path and why, the decoded size, a preview without reading every file."""

import pytest

from tests.test_streamed import folder_config, make_folder

pytest.importorskip("PIL.Image")


def test_data_page_says_the_path_and_previews_a_streamed_folder_from_a_sample(qtbot, tmp_path, monkeypatch):
    from kdstudio.core.data import folder_stream
    from kdstudio.gui import tasks
    from kdstudio.gui.pages.preview import DataPreview
    root = make_folder(tmp_path / "imgs", n=90)
    reads = []
    real_read = folder_stream.FolderReader.read
    monkeypatch.setattr(folder_stream.FolderReader, "read", lambda self, i: (reads.append(i), real_read(self, i))[1])
    cfg = folder_config(root, **{"data.mode": "auto", "data.memory_budget_gb": 1e-5,  # 10 KB: the folder streams
                                 "data.normalize": "imagenet"})  # fixed statistics: no sample decoded for them
    info = tasks.model_info(cfg)
    preview = info["preview"]
    assert preview["data_path"].startswith("streamed: 90 images × 3×12×12 = 151.9 KB would not fit the 10.5 KB")
    assert sum(preview["counts"]["train"]) + sum(preview["counts"]["val"]) + sum(preview["counts"]["test"]) == 90
    assert preview["mosaic"] is not None
    assert len(reads) == 3 * 8  # only the images the mosaic shows (8 per class) were decoded
    page = DataPreview()
    qtbot.addWidget(page)
    page.show_preview(preview)
    assert page.path_note.text() == f"Data path — {preview['data_path']}.\nInputs: 12×12 as read, ImageNet mean/std."
    page.show_preview(None)
    assert page.path_note.text() == ""


def test_the_cache_fill_shows_on_the_train_bar_and_the_data_page(qtbot):
    from PySide6.QtCore import QObject, Signal
    from kdstudio.core import events as ev
    from kdstudio.core.config import Config
    from kdstudio.gui.model import ConfigModel
    from kdstudio.gui.pages.live import LiveRun
    from kdstudio.gui.pages.models import DataPage
    from kdstudio.gui.info import InfoHub

    class Run(QObject):  # the run controller's two signals the page follows, and its live state
        events = Signal(list)
        state_changed = Signal(str)
        live = None

    live = LiveRun(Config(), "/tmp/run")
    fill = lambda done: ev.Event(ev.CACHE_FILL, "distill", {"done": done, "total": 1000, "path": "/x/c.fp16",  # noqa
                                                              "bytes": done * 20})
    live.ingest([fill(250)])
    assert live.cache_line() == "Filling the teacher-output cache: 250/1,000 rows (25%), 0.0 MiB on disk"
    assert live.bar(False)[2] == live.cache_line()
    run = Run()
    run.live = live
    model = ConfigModel()
    model.replace(Config())
    page = DataPage(model, InfoHub(model), run)
    qtbot.addWidget(page)
    page.show()
    run.events.emit([])
    assert page.preview.fill_note.isVisible() and "250/1,000" in page.preview.fill_note.text()
    live.ingest([fill(1000)])
    run.events.emit([])
    assert not page.preview.fill_note.isVisible() and live.cache_line() == ""
