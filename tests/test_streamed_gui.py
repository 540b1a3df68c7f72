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
    assert page.path_note.text() == f"Data path — {preview['data_path']}."
    page.show_preview(None)
    assert page.path_note.text() == ""
