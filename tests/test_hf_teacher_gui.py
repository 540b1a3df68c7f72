"""Teacher page: a Hugging Face model folder chosen with Folder… (or dropped) is counted and lists its own layers."""

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytest.importorskip("transformers")  # a guard only: CI installs transformers

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QFileDialog  # noqa: E402

from tests.helpers import tiny_config  # noqa: E402
from tests.test_gui_extras import _drop  # noqa: E402 - a drag and drop as Qt delivers it
from tests.test_hf_teacher import remote_code_folder, save_folder, tiny_resnet_config  # noqa: E402

WAIT_MS = 60_000


def _teacher_page(window, qtbot):
    window.panel.new_project("HF")
    window.model.replace(tiny_config(**{"teacher.source": "file"}))
    window.hub.load_catalog()
    qtbot.waitUntil(lambda: window.hub.catalog is not None, timeout=WAIT_MS)
    window.show_page("Teacher")
    return window.pages["Teacher"]


def test_folder_button_chooses_an_hf_folder_and_lists_its_layers(window, qtbot, tmp_path, monkeypatch):
    import torch
    from transformers import ResNetForImageClassification

    from kdstudio.gui.widgets import fmt_int
    torch.manual_seed(0)
    lib = ResNetForImageClassification(tiny_resnet_config())
    folder = save_folder(lib, tmp_path / "tiny-resnet")
    page = _teacher_page(window, qtbot)
    field = page.form.fields["teacher.path"]
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))  # the user picks it
    arch = page.form.fields["teacher.arch"].editor
    assert arch.findData("hf") >= 0  # offered beside the zoo names
    width = page.form.fields["teacher.width"]
    assert width.isVisibleTo(page)
    arch.lineEdit().selectAll()
    qtbot.keyClicks(arch.lineEdit(), "hf")  # typed into the editable box, as a person may
    qtbot.keyClick(arch.lineEdit(), Qt.Key_Return)
    assert window.model.cfg.teacher.arch == "hf" and not width.isVisibleTo(page)
    qtbot.mouseClick(field.folder_button, Qt.LeftButton)
    assert window.model.cfg.teacher.path == str(folder) and field.editor.text() == str(folder)
    want = fmt_int(sum(p.numel() for p in lib.parameters()))
    qtbot.waitUntil(lambda: page.params_card.value.text() == want, timeout=WAIT_MS)
    names = [page.layers.tree.topLevelItem(i).text(0) for i in range(page.layers.tree.topLevelItemCount())]
    leaves = [n for n, m in lib.named_modules() if n and not any(True for _ in m.children())]
    assert names == leaves and "resnet.encoder.stages.1.layers.0.layer.2.convolution" in names


def test_dropping_folders_on_the_teacher_page(window, qtbot, tmp_path):
    from transformers import ResNetForImageClassification
    folder = save_folder(ResNetForImageClassification(tiny_resnet_config()), tmp_path / "tiny-resnet")
    page = _teacher_page(window, qtbot)
    plain = tmp_path / "photos"
    plain.mkdir()
    _drop(page, str(plain))
    assert "without a config.json" in page.drop.message.text() and window.model.cfg.teacher.path == ""
    _drop(page, str(folder))
    assert window.model.cfg.teacher.path == str(folder)
    assert "Hugging Face teacher folder" in page.drop.message.text()


def test_folder_code_goes_to_the_trust_prompt_not_run(tmp_path):
    from kdstudio.core import trust
    from kdstudio.gui import tasks
    remote, code, _ = remote_code_folder(tmp_path)
    trust.revoke_all()
    info = tasks.model_info(tiny_config(**{"teacher.source": "file", "teacher.path": str(remote)}))
    assert info["untrusted"] == [{"role": "teacher", "path": str(code), "kind": "remote_code",
                                  "sha256": trust.digest(code)}]
    assert "not trusted" in info["errors"]["teacher"] and info["student"]  # the student is still counted
