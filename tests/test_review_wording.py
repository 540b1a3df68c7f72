"""What a new-user review asked for: forms whose groups share one label column, help texts that say more than
their label, a project line that says "running" during a run, and CLI errors that are true for the command used."""

import inspect
import re

import pytest

from kdstudio.cli import main
from kdstudio.core import config as config_mod
from kdstudio.core.store.projects import ProjectStore
from kdstudio.core.config.templates import demo_config
from kdstudio.gui.forms import label_for
from tests.test_cli import _one_line_error

FORM_PAGES = ("Data", "Teacher", "Student", "Method", "Train", "Export")
SMALL_WORDS = {"a", "an", "the", "of", "for", "to", "in", "on", "and", "or", "per", "by", "with", "is", "it"}


# ---- forms: one label column per form ---------------------------------------------------------------------
def _field_xs(form) -> dict[str, int]:
    """x of each shown field's editor column, in the form's coordinates."""
    return {key: f.mapTo(form, f.rect().topLeft()).x() for key, f in form.fields.items() if f.isVisible()}


def test_groups_of_a_form_start_their_fields_at_one_x(qtbot):
    from kdstudio.gui.forms import ConfigForm
    form = ConfigForm(lambda k, v: None, lambda k, m: None)
    form.add_group("Short", ["distill.alpha"])
    form.add_group("Long", ["distill.cache_teacher", "distill.epochs"])
    form.add_group("Longest", ["compress.prune_finetune_lr"])
    qtbot.addWidget(form)
    form.resize(900, 600)
    form.show()
    qtbot.waitExposed(form)
    xs = _field_xs(form)
    assert len(xs) == 4 and len(set(xs.values())) == 1, xs
    widest = max(label.natural_width() for label in form.label_column.labels)
    _, short_label = form.rows["distill.alpha"]
    assert short_label.width() >= widest  # the short label's cell is as wide as the longest label
    assert short_label.alignment() & form.rows["distill.alpha"][0].labelAlignment()  # text still to the right


def test_rows_built_again_can_share_the_column_and_leave_it(qtbot):
    from PySide6.QtWidgets import QFormLayout, QGroupBox, QLineEdit

    from kdstudio.gui.forms import ConfigForm
    form = ConfigForm(lambda k, v: None, lambda k, m: None)
    form.add_group("Method", ["distill.alpha"])
    qtbot.addWidget(form)
    base = form.label_column.width()
    box = QGroupBox("Method parameters")  # as the Method page's own parameter rows could do
    rows = QFormLayout(box)
    rows.addRow(form.label_column.label("a very long parameter name indeed"), QLineEdit())
    form.layout_.addWidget(box)
    assert form.label_column.width() > base
    rows.removeRow(0)  # deletes the label
    assert form.label_column.width() == base
    form.label_column.label("x")  # adding after a deletion is fine too
    assert form.label_column.width() == base


def test_every_form_page_lines_its_groups_up(window, qtbot):
    window.open_initial(demo=True)
    window.resize(1440, 900)
    for name in FORM_PAGES:
        window.show_page(name)
        qtbot.wait(20)
        page = window.pages[name]
        for form in page.forms() if hasattr(page, "forms") else [page.form]:
            xs = _field_xs(form)
            groups = {box.title() for box, keys in form.groups if any(k in xs for k in keys)}
            assert len(set(xs.values())) <= 1, (name, groups, xs)


# ---- help texts ---------------------------------------------------------------------------------------------
def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower().replace("-", " ")) if w not in SMALL_WORDS}


@pytest.mark.parametrize("key", config_mod.all_keys())
def test_help_says_more_than_the_label(key):
    help_text = config_mod.field_info(key).metadata["help"]
    label = label_for(key)
    assert help_text.strip().lower() != label.lower()
    extra = _words(help_text) - _words(label) - _words(key.replace("_", " ").replace(".", " "))
    assert len(extra) >= 4, f"{key}: help {help_text!r} adds little to its label {label!r}"


@pytest.mark.parametrize("key", ["distill.lr", "teacher.lr", "distill.optimizer", "distill.weight_decay",
                                 "distill.scheduler", "distill.temperature", "data.batch_size"])
def test_training_knobs_name_typical_values(key):
    assert re.search(r"\d", config_mod.field_info(key).metadata["help"]), key


def test_help_texts_say_what_the_code_does():
    from kdstudio.core.train import loop as training
    info = lambda k: config_mod.field_info(k).metadata["help"]  # noqa: E731
    assert "momentum=0.9" in inspect.getsource(training.make_optimizer) and "0.9" in info("distill.optimizer")
    assert "0.1 **" in inspect.getsource(training.make_scheduler) and "50% and 75%" in info("distill.scheduler")
    assert "every compression fine-tune" not in info("compress.finetune_lr")  # pruning has its own lr


# ---- project list: the run in progress --------------------------------------------------------------------
def _panel(qtbot):
    from kdstudio.gui.project_panel import ProjectPanel
    store = ProjectStore()
    project = store.create("Demo", demo_config())
    panel = ProjectPanel(store)
    qtbot.addWidget(panel)
    panel.reload()
    return panel, project


def _line(panel, row=0) -> str:
    return panel.list.item(row).text().split("\n")[1]


def test_project_line_says_running_for_the_run_in_progress(qtbot):
    panel, project = _panel(qtbot)
    assert _line(panel) == "0 runs"
    new = project.runs_dir / "20250101-000000"
    panel.set_live_run(new, "running")  # started, folder not written yet
    assert _line(panel) == "1 run · running"
    new.mkdir()  # the folder exists, summary.json not yet: on disk it reads "incomplete"
    panel.reload()
    assert _line(panel) == "1 run · running"
    panel.set_live_run(new, "paused")
    assert _line(panel) == "1 run · paused"
    panel.set_live_run(new, "idle")
    assert _line(panel) == "1 run · last incomplete"
    panel.set_live_run(project.runs_dir / "20250101-000001")
    assert _line(panel) == "2 runs · running"
    panel.set_live_run(None)
    assert _line(panel) == "1 run · last incomplete"


def test_a_live_run_of_another_project_leaves_this_line_alone(qtbot, tmp_path):
    panel, _ = _panel(qtbot)
    panel.set_live_run(tmp_path / "elsewhere" / "runs" / "x")
    assert _line(panel) == "0 runs"


def test_window_run_shows_running_in_the_project_list(window, qtbot):
    from tests.helpers import tiny_config
    from tests.test_gui_run import RUN_TIMEOUT_MS, _project, start
    window.hub.load_catalog()
    qtbot.waitUntil(lambda: window.hub.catalog is not None, timeout=RUN_TIMEOUT_MS)
    _project(window, tiny_config())
    row = window.panel.names().index("Tiny")
    start(window, qtbot)
    try:
        during = _line(window.panel, row)
    finally:  # never leave a run going into teardown, where closing the window would ask a modal question
        qtbot.waitUntil(lambda: not window.run.running, timeout=RUN_TIMEOUT_MS)
    assert during == "1 run · running"
    assert "running" not in _line(window.panel, row) and "student" in _line(window.panel, row)


# ---- CLI ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["pdf", "all,pdf", "torchscript, pdf"])
def test_export_names_every_valid_format_including_all(capsys, tmp_path, fmt):
    err = _one_line_error(capsys, ["export", str(tmp_path), "--format", fmt], "'pdf'")
    assert err.endswith("torchscript, onnx, safetensors, state_dict, torch_export, openvino, executorch or all."), err


def test_export_without_a_format_says_so(capsys, tmp_path):
    _one_line_error(capsys, ["export", str(tmp_path), "--format", " , "], "--format needs a format")


def _fake_run(folder, status=None, checkpoint=True):
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.toml").write_text("")
    if checkpoint:
        (folder / "checkpoints" / "distill.pt").write_bytes(b"")
    if status:
        (folder / "summary.json").write_text(f'{{"status": "{status}"}}')
    return folder


def test_demo_has_no_resume_option(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "--resume" not in capsys.readouterr().out


def test_demo_on_a_finished_run_does_not_suggest_resume(capsys, tmp_path):
    out = _fake_run(tmp_path / "done", "completed")
    err = _one_line_error(capsys, ["demo", "--out", str(out)], "choose another --out or delete that folder")
    assert "finished run" in err and "resume" not in err


def test_demo_on_an_unfinished_run_names_the_command_that_continues_it(capsys, tmp_path):
    out = _fake_run(tmp_path / "stopped", "stopped")
    _one_line_error(capsys, ["demo", "--out", str(out)], f"`kdstudio run --resume --out {out}`")


def test_demo_on_a_sweep_or_a_run_without_checkpoint(capsys, tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.toml").write_text("")
    _one_line_error(capsys, ["demo", "--out", str(sweep)], "kdstudio run --resume")
    bare = _fake_run(tmp_path / "bare", checkpoint=False)
    assert "resume" not in _one_line_error(capsys, ["demo", "--out", str(bare)], "choose another --out")


def test_demo_errors_show_the_traceback_with_debug(capsys, tmp_path):
    out = _fake_run(tmp_path / "done", "completed")
    assert main(["demo", "--out", str(out), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_init_writes_the_new_help_and_names_its_own_file(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    assert main(["init", str(path)]) == 0
    text = path.read_text()
    assert "kdstudio run " + str(path) in text.splitlines()[1]
    line = next(t for t in text.splitlines() if t.startswith("lr = ") and "student" in t)
    assert "adamw" in line and "1e-3" in line
