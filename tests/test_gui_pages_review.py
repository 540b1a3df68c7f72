"""GUI review fixes: export a sweep's seed, the overwrite question names every file, a dropped .py sets the
student, the Teacher and Student pages say which run trained them, renaming says what the name became."""

import warnings
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402
from PySide6.QtWidgets import QDialogButtonBox, QInputDialog, QMessageBox  # noqa: E402

from kdstudio.gui.pages.export_table import CHECK  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402

WAIT_MS = 60_000
CARD_FILES = {"MODEL_CARD.md", "model_card.json", "loss_curves.png", "confusion_matrix.png"}


def _project(window, cfg, name="Review"):
    window.panel.new_project(name)
    window.model.replace(cfg)
    window.model.save_now()
    return window.model.project


def _sweep_project(window, **over):
    """A project whose one run is a sweep over seeds 0 and 1 (run by the core, not through the window)."""
    from kdstudio.core.pipeline import sweep
    cfg = tiny_config(**{"distill.epochs": 1, "baseline.enabled": False, **over})
    project = _project(window, cfg)
    swept = cfg.copy()
    swept.run.seeds = [0, 1]
    assert sweep.run_sweep(swept, project.new_run_dir())["status"] == "completed"
    [run] = project.runs()
    assert run.is_sweep
    return run


def _single_project(window, cfg):
    from kdstudio.core.pipeline import engine
    project = _project(window, cfg)
    assert engine.run(cfg.copy(), project.new_run_dir())["status"] == "completed"
    [run] = project.runs()
    return run


def _finish(qtbot, task):
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass
    assert task.error is None, task.error


# ---- 1. a sweep's seed / grid point is exported like a single run --------------------------------------------

def test_export_page_exports_the_chosen_seed_of_a_sweep(window, qtbot, tmp_path):
    import torch

    from kdstudio.core import models
    from kdstudio.gui.info import trained_note
    run = _sweep_project(window)
    page = window.pages["Export"]
    window.show_page("Export")
    page.reload_runs()
    assert page.selected_run().path == run.path and "sweep of 2 runs" in page.run_combo.currentText()
    assert page.sub_combo.isVisible() and page.sub_combo.count() == 2
    texts = [page.sub_combo.itemText(i) for i in range(2)]
    for seed, text in zip((0, 1), texts):
        acc = run.summary["runs"][seed]["student"]["accuracy"]
        assert text.startswith(f"seed {seed}  ·  student {acc * 100:.2f}%") and "★ best point" in text
    page.sub_combo.setCurrentIndex(1)
    seed1 = Path(run.path) / "base" / "seed-1"
    assert page.export_dir() == seed1 and page.out_dir() == seed1 / "exports"
    out = tmp_path / "shipped"
    page.folder.setText(str(out))
    task = page.export()
    _finish(qtbot, task)
    assert "seed 1" in page.status.text()
    assert all(page.table.item(r, CHECK).text() == "✓ matches" for r in range(page.table.rowCount()))
    # the file holds seed 1's student, not seed 0's
    m = models.build("mlp", 10, (1, 8, 8), 16, 1)
    m.load_state_dict(torch.load(out / "student.state_dict.pt", weights_only=True))
    for seed, same in ((1, True), (0, False)):
        ckpt = torch.load(Path(run.path) / "base" / f"seed-{seed}" / "checkpoints" / "distill.pt",
                          weights_only=False)["model"]
        assert all(torch.equal(v, ckpt[k]) for k, v in m.state_dict().items()) is same
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ts = torch.jit.load(str(out / "student.torchscript.pt"))
    x = torch.randn(3, 1, 8, 8)
    assert torch.allclose(ts(x), m.eval()(x), atol=1e-5)
    assert (out / "MODEL_CARD.md").is_file()
    # the Teacher page's note speaks of the sweep
    assert trained_note(window.model.project, window.model.cfg, "teacher").startswith(f"trained in sweep {run.name}")


# ---- 2. the overwrite question names every file the export writes again --------------------------------------

def test_overwrite_question_lists_model_card_and_plots(window, qtbot, tmp_path, monkeypatch):
    _single_project(window, tiny_config(**{"distill.epochs": 1, "baseline.enabled": False}))
    page = window.pages["Export"]
    page.reload_runs()
    assert not page.sub_combo.isVisible()  # a single run: no seed to choose
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.No)
    assert page.export() is None  # the run's own exports/ already holds everything: asked, answered No
    [question] = asked
    listed = {line[2:] for line in question.splitlines() if line.startswith("• ")}
    assert listed == {"student.torchscript.pt", "student.state_dict.pt", "student.arch.json"} | CARD_FILES
    assert "already holds 7 files" in question

    fresh = tmp_path / "fresh"
    page.folder.setText(str(fresh))
    _finish(qtbot, page.export())  # nothing there yet: no question
    assert len(asked) == 1 and CARD_FILES <= {p.name for p in fresh.iterdir()}
    window.model.set("export.formats", ["state_dict"])
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.Yes)
    before = (fresh / "MODEL_CARD.md").stat().st_mtime_ns
    _finish(qtbot, page.export())
    listed = {line[2:] for line in asked[1].splitlines() if line.startswith("• ")}
    assert listed == {"student.state_dict.pt", "student.arch.json"} | CARD_FILES  # torchscript is not rewritten
    assert (fresh / "MODEL_CARD.md").stat().st_mtime_ns >= before


# ---- 3. a dropped .py file becomes the student ----------------------------------------------------------------

def _drop_file(page, path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    for kind in (QDragEnterEvent, QDropEvent):
        event = kind(QPointF(20, 20), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
        assert page.file_drop.eventFilter(page.widget(), event) and event.isAccepted()


NET = ("import torch\nfrom torch import nn\n\n\ndef block(cin, cout):\n    return nn.Linear(cin, cout)\n\n\n"
       "def make(num_classes, input_shape, width=24):\n"
       "    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, num_classes))\n")


def test_dropping_a_python_file_sets_the_student_factory(window, qtbot, tmp_path, monkeypatch):
    from kdstudio.core import models
    from kdstudio.gui.widgets import fmt_int
    _project(window, tiny_config())
    window.hub.load_catalog()
    qtbot.waitUntil(lambda: window.hub.catalog is not None, timeout=WAIT_MS)
    page = window.pages["Student"]
    window.show_page("Student")

    _drop_file(page, tmp_path / "weights.pt")
    assert window.model.cfg.student.arch == "mlp"
    assert "'weights.pt' is not a Python file" in page.drop.message.text()
    assert "d93025" in page.drop.message.styleSheet()  # in red

    net = tmp_path / "my_net.py"
    net.write_text(NET)  # block() needs cin/cout: not a factory, so make() is the only candidate
    _drop_file(page, net)
    assert window.model.cfg.student.arch == f"{net}:make"
    assert page.form.fields["student.arch"].editor.currentText() == f"{net}:make"
    assert "make()" in page.drop.message.text() and "d93025" not in page.drop.message.styleSheet()
    qtbot.waitUntil(lambda: window.trust_prompt.box is not None, timeout=WAIT_MS)  # it runs that file: asked first
    assert "Python file: using it as an architecture runs it" in window.trust_prompt.box.text()
    qtbot.mouseClick(window.trust_prompt.box.yes, Qt.LeftButton)
    want = fmt_int(models.count_params(models.build(f"{net}:make", 10, (1, 8, 8), 16, 1)))  # student.width = 16
    qtbot.waitUntil(lambda: page.params_card.value.text() == want, timeout=WAIT_MS)

    two = tmp_path / "two.py"
    two.write_text(NET + "\n\ndef tiny(num_classes):\n"
                         "    return nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes))\n")
    offered = []
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: offered.append(a[3]) or ("tiny", True))
    _drop_file(page, two)
    assert offered == [["make", "tiny"]] and window.model.cfg.student.arch == f"{two}:tiny"
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: ("", False))
    _drop_file(page, two)
    assert window.model.cfg.student.arch == f"{two}:tiny" and "unchanged" in page.drop.message.text()

    bad = tmp_path / "bad.py"
    bad.write_text("def make(:\n")
    page.drop_files([str(bad)])
    assert "not valid Python (line 1" in page.drop.message.text()
    empty = tmp_path / "empty.py"
    empty.write_text("SIZE = 3\n")
    page.drop_files([str(empty)])
    assert "defines no top-level function" in page.drop.message.text()
    page.drop_files([str(net), str(two)])
    assert "2 files were dropped" in page.drop.message.text()
    assert window.model.cfg.student.arch == f"{two}:tiny"


# ---- 4. Teacher and Student pages say which run trained them ---------------------------------------------------

def test_teacher_page_says_which_run_trained_the_teacher(window, qtbot):
    from kdstudio.core.pipeline import engine
    from kdstudio.gui.widgets import fmt_pct
    cfg = tiny_config(**{"distill.epochs": 1, "baseline.enabled": False})
    project = _project(window, cfg)
    window.hub.load_catalog()
    teacher, student = window.pages["Teacher"], window.pages["Student"]
    window.show_page("Teacher")
    qtbot.waitUntil(lambda: teacher.params_card.value.text() not in ("–", "…"), timeout=WAIT_MS)
    assert teacher.params_card.detail.text() == "built for this data, not yet trained"

    summary = engine.run(cfg.copy(), project.new_run_dir())
    [run] = project.runs()
    window.show_page("Data")
    window.show_page("Teacher")  # shown again after the run: the card reads the run folder
    want = f"trained in run {run.name}: test accuracy {fmt_pct(summary['teacher']['accuracy'])}"
    assert teacher.params_card.detail.text() == want
    assert teacher.other_card.detail.text().startswith(f"distilled in run {run.name}: test accuracy")
    window.show_page("Student")
    assert student.other_card.detail.text() == want

    window.model.set("teacher.width", 12)  # another teacher: the run did not train this one
    qtbot.waitUntil(lambda: teacher.params_card.detail.text().startswith("not yet trained with these settings"),
                    timeout=WAIT_MS)
    assert f"run {run.name} trained another" in teacher.params_card.detail.text()


# ---- 5. renaming says what the name became ---------------------------------------------------------------------

def test_rename_says_when_the_name_was_changed_or_is_taken(window, monkeypatch):
    from kdstudio.gui.project_panel import NameDialog
    panel = window.panel
    panel.new_project("Other")
    panel.new_project("Mine")
    renamed = panel.rename_current("a/b: c")
    assert renamed.name == "a_b_ c" and window.model.project.name == "a_b_ c"
    assert panel.notice.isVisibleTo(panel)
    assert panel.notice.text() == "Saved as 'a_b_ c' — '/' and ':' cannot be part of a folder name."
    panel.rename_current("Plain name")
    assert not panel.notice.isVisibleTo(panel) and window.model.project.name == "Plain name"

    warned = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: warned.append(a[2]))
    assert panel.rename_current("Other") is None and window.model.project.name == "Plain name"
    assert warned == ["A project named 'Other' already exists; choose another name."]

    dialog = NameDialog(panel, "Rename project", "Plain name", panel.check_rename)
    ok = dialog.buttons.button(QDialogButtonBox.Ok)
    dialog.edit.setText("Other")
    assert not ok.isEnabled() and dialog.hint.text() == "A project named 'Other' already exists; choose another name."
    dialog.edit.setText("x*y")
    assert ok.isEnabled() and dialog.hint.text() == "Will be saved as 'x_y' — '*' cannot be part of a folder name."
    dialog.edit.setText("Plain name/")
    assert ok.isEnabled() and "that is its current name" in dialog.hint.text()
    dialog.close()

    panel.new_project("Other")  # a new project's name is made unique: say so
    assert window.model.project.name == "Other 2"
    assert panel.notice.text() == "Saved as 'Other 2' — a project named 'Other' already exists."

    panel.hide()  # the project list folded away: the sentence goes to the status bar
    panel.rename_current("Q?A")
    assert window.statusBar().currentMessage() == "Saved as 'Q_A' — '?' cannot be part of a folder name."
