"""TOML written through tomlkit: in-place edits keep a user's comments and layout, every value round-trips, and the
window's form autosave and Save TOML keep a hand-commented project.toml intact."""

import tomllib

import pytest

from kdstudio.core import config as config_mod
from kdstudio.core.config import toml_edit
from kdstudio.core.config.templates import demo_config, starter_config_text
from kdstudio.core.errors import KDError
from kdstudio.core.store.projects import ProjectStore

# Strings the old hand-written writer could not write back (\r, \t, control characters) and their neighbours.
HARD_STRINGS = ["car\rriage", "tab\there", "ctl\x01\x1f\x7f\x00", 'double " quote', "single ' quote", "back\\slash",
                "not an escape: \\n \\t \\u0041", "line\nbreak", "ünïcødé 学生 🙂 \u2028", "", '"""', "'''",
                "  spaced  ", "# not a comment", "a = 1"]

HAND = """\
# My digits experiment: notes that must survive every save.
seed = 0          # keep fixed for comparisons

# Teacher: a small CNN (mlp was worse)
[teacher]
arch = "cnn"      # tried mlp
epochs = 15       # enough on digits

[distill]
# Hinton KD, T = 4 worked best
temperature = 4.0   # soft targets
alpha = 0.9

# the end
"""


def test_dumps_writes_the_schema_layout_and_reads_back():
    cfg = demo_config()
    text = toml_edit.dumps(cfg)
    assert text.startswith("seed = 0\ndevice = \"auto\"\n\n[data]\n")
    assert "\n[distill]\nmethod = \"kd\"\ntemperature = 4.0\n" in text
    assert config_mod.loads(text).to_dict() == cfg.to_dict()
    assert config_mod.dumps(cfg) == text  # the run folder's config.toml is written the same way


@pytest.mark.parametrize("value", HARD_STRINGS)
def test_every_string_round_trips_in_strings_lists_and_tables(value):
    cfg = config_mod.Config()
    cfg.data.path = value
    cfg.data.class_names = [value, "b"]
    cfg.distill.params = {"note": value, value or "empty": 1.0}
    cfg.run.sweep = {"distill.temperature": [2, 4]}
    for text in (toml_edit.dumps(cfg), toml_edit.dumps(cfg, comments=True), toml_edit.update(HAND, cfg)):
        assert config_mod.loads(text).to_dict() == cfg.to_dict()
    assert tomllib.loads(f"v = {config_mod._toml_value([value])}")["v"] == [value]  # what a list field shows


def test_update_changes_only_the_lines_whose_value_changed():
    cfg = config_mod.loads(HAND)
    cfg.teacher.epochs = 7
    cfg.distill.temperature = 2.5
    cfg.seed = 0  # unchanged: its line is left exactly as written
    out = toml_edit.update(HAND, cfg)
    assert out == HAND.replace("epochs = 15 ", "epochs = 7 ").replace("temperature = 4.0 ", "temperature = 2.5 ")
    assert config_mod.loads(out).to_dict() == cfg.to_dict()


def test_update_adds_new_keys_to_their_section_and_keeps_keys_back_at_their_default():
    cfg = config_mod.loads(HAND)
    cfg.teacher.epochs = 10  # the default: the line stays, with the new value
    cfg.distill.epochs = 9  # not in the file: added at the end of [distill], before the closing comment
    cfg.device = "cpu"  # top-level: after seed, not under the teacher's comment
    cfg.export.formats = ["onnx"]  # a section the file lacks: a new table at the end
    out = toml_edit.update(HAND, cfg)
    lines = out.splitlines()
    assert lines[1:3] == ["seed = 0          # keep fixed for comparisons", 'device = "cpu"']
    assert "epochs = 10       # enough on digits" in lines
    assert out.index("alpha = 0.9\nepochs = 9\n\n# the end\n") > out.index("[distill]")
    assert out.rstrip().endswith('[export]\nformats = ["onnx"]')
    assert all(line in lines for line in HAND.splitlines() if line.startswith("#"))
    assert config_mod.loads(out).to_dict() == cfg.to_dict()
    # a key the file lacks whose value is the default is not added: a trimmed file stays trimmed
    assert "optimizer" not in out and "batch_size" not in out


@pytest.mark.parametrize("text", [
    "distill.temperature = 2  # dotted\nseed = 1\n",
    "distill = { temperature = 2 }  # inline\n",
    "[distill]\ntemperature = 2\n\n[distill.params]  # a sub-table\nbeta = 1.0\n",
    "# only a comment\n",
    "",
])
def test_update_handles_other_layouts(text):
    cfg = config_mod.loads(text)
    cfg.distill.temperature, cfg.distill.optimizer, cfg.device = 3.0, "sgd", "cpu"
    out = toml_edit.update(text, cfg)
    assert config_mod.loads(out).to_dict() == cfg.to_dict()
    assert all(line.split("#", 1)[1] in out for line in text.splitlines() if "#" in line)


def test_same_compares_as_config_values():
    assert toml_edit.same(4, 4.0) and toml_edit.same([0, 1], [0.0, 1.0]) and toml_edit.same(float("nan"), float("nan"))
    assert not toml_edit.same(True, 1) and not toml_edit.same("1", 1) and not toml_edit.same({"a": 1}, {"b": 1})


def test_starter_file_has_its_header_and_a_comment_on_every_key():
    text = starter_config_text("exp.toml")
    assert text.startswith("# KD Studio run configuration (TOML).") and "kdstudio run exp.toml" in text
    assignments = [line for line in text.splitlines() if " = " in line and not line.startswith("#")]
    assert len(assignments) == len(config_mod.all_keys())
    assert all("  # " in line and line.index("#") >= 40 for line in assignments)
    assert 'augment = "none"                         # random augmentation' in text  # the column it always used
    assert config_mod.loads(text).to_dict() == demo_config().to_dict()


# ---- the store ---------------------------------------------------------------------------------------------

def test_project_save_keeps_comments_and_takes_outside_comments():
    p = ProjectStore().create("kept")
    p.file.write_text(HAND, encoding="utf-8")
    p.reload()
    cfg = p.config.copy()
    cfg.teacher.epochs = 3
    p.save(cfg)
    assert p.file.read_text(encoding="utf-8") == HAND.replace("epochs = 15 ", "epochs = 3 ")
    # another editor adds a comment while the project is open: the next save keeps it
    p.file.write_text("# added elsewhere\n" + p.file.read_text(encoding="utf-8"), encoding="utf-8")
    cfg.teacher.epochs = 4
    p.save(cfg)
    text = p.file.read_text(encoding="utf-8")
    assert text.startswith("# added elsewhere\n# My digits experiment") and "epochs = 4 " in text


def test_project_damaged_behind_its_back_is_not_overwritten():
    p = ProjectStore().create("fragile")
    p.file.write_text("[teacher\nepochs = 3\n", encoding="utf-8")  # broken by another editor after loading
    with pytest.raises(KDError, match="changed outside KD Studio and is now damaged.*not overwritten"):
        p.save(config_mod.Config())
    assert p.file.read_text(encoding="utf-8") == "[teacher\nepochs = 3\n" and p.damaged


@pytest.mark.parametrize("value", HARD_STRINGS)
def test_project_reads_back_every_string_it_saved(value):
    store = ProjectStore()
    p = store.create("strings")
    cfg = p.config.copy()
    cfg.teacher.path, cfg.teacher.extra_paths = value, [value]
    p.save(cfg)
    again = store.get("strings")
    assert not again.damaged, again.error
    assert again.config.teacher.path == value and again.config.teacher.extra_paths == [value]


# ---- through the window ------------------------------------------------------------------------------------

def _open(window, name: str, text: str):
    """A project whose project.toml is `text`, opened in the window as a user would pick it."""
    p = ProjectStore().create(name)
    p.file.write_text(text, encoding="utf-8")
    window.panel.reload()
    window.panel.open(name)
    assert window.model.project.name == name and not window.model.project.damaged
    return window.model.project


def _save_toml(qtbot, window, typed: str) -> None:
    """Type at the end of the TOML editor and press Save TOML."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QTextCursor
    window.toml_dock.show()
    editor = window.toml.editor
    editor.setFocus()
    editor.moveCursor(QTextCursor.End)
    qtbot.keyClicks(editor, typed)
    qtbot.keyClick(editor, Qt.Key_Return)
    assert window.toml.apply_btn.isEnabled()
    qtbot.mouseClick(window.toml.apply_btn, Qt.LeftButton)


def test_form_edit_and_save_toml_keep_every_comment(window, qtbot):
    window.open_initial()
    p = _open(window, "Commented", HAND)
    assert window.toml.editor.toPlainText() == HAND  # the editor shows the file itself, comments and all
    field = window.pages["Teacher"].form.fields["teacher.epochs"]
    field.editor.setFocus()
    field.editor.selectAll()
    qtbot.keyClicks(field.editor, "7")
    edited = HAND.replace("epochs = 15 ", "epochs = 7 ")
    qtbot.waitUntil(lambda: p.file.read_text(encoding="utf-8") == edited, timeout=5000)  # autosave, in place
    assert window.toml.editor.toPlainText() == edited

    _save_toml(qtbot, window, "# typed in the TOML editor")
    assert window.toml.status.text().startswith("Saved")
    saved = edited + "# typed in the TOML editor\n"
    assert p.file.read_text(encoding="utf-8") == saved and window.toml.editor.toPlainText() == saved

    # the next form edit keeps the editor's comment too
    temperature = window.pages["Method"].form.fields["distill.temperature"]
    temperature.editor.setFocus()
    temperature.editor.selectAll()
    qtbot.keyClicks(temperature.editor, "2.5")
    final = saved.replace("temperature = 4.0 ", "temperature = 2.5 ")
    qtbot.waitUntil(lambda: p.file.read_text(encoding="utf-8") == final, timeout=5000)
    assert config_mod.load(p.file).distill.temperature == 2.5 and config_mod.load(p.file).teacher.epochs == 7


def test_every_string_pasted_into_a_form_field_reads_back(window, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication
    window.open_initial()
    p = _open(window, "Strings", HAND)
    editor = window.pages["Teacher"].form.fields["teacher.path"].editor
    mixed = "|".join(HARD_STRINGS)
    for value in HARD_STRINGS + [mixed]:
        QApplication.clipboard().setText(value)
        editor.setFocus()
        editor.selectAll()
        qtbot.keyClick(editor, Qt.Key_V, Qt.ControlModifier)
        assert window.model.cfg.teacher.path == value
        qtbot.waitUntil(lambda: not window.model.dirty, timeout=5000)
        again = ProjectStore().get("Strings")
        assert not again.damaged, (value, again.error)
        assert again.config.teacher.path == value
        assert "# Hinton KD, T = 4 worked best" in p.file.read_text(encoding="utf-8")
    # the TOML editor shows them all escaped, and Save TOML writes them back unchanged
    assert "\\r" in window.toml.editor.toPlainText()
    _save_toml(qtbot, window, "# pasted strings")
    again = ProjectStore().get("Strings")
    assert not again.damaged and again.config.teacher.path == mixed and window.model.cfg.teacher.path == mixed
