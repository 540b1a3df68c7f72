"""The Qt-free project store and settings: names, folders, damaged files, runs, recent projects."""

import json

import pytest

from kdstudio.core import config as config_mod
from kdstudio.core.errors import KDError
from kdstudio.core.store.projects import ProjectStore, projects_root, sanitize_name
from kdstudio.core.store.settings import Settings, settings_path
from kdstudio.core.config.templates import demo_config


@pytest.mark.parametrize("raw, safe", [
    ("Digits demo", "Digits demo"),
    ("../../etc/passwd", "etc_passwd"),
    ("a/b\\c:d*e?f", "a_b_c_d_e_f"),
    ("  spaced   out  ", "spaced out"),
    ("", "Untitled"),
    ("...", "Untitled"),
    ("CON", "_CON"),
    ("Ähnlich 学生", "Ähnlich 学生"),
    ("x" * 100, "x" * 64),
])
def test_sanitize_name_makes_one_safe_folder_name(raw, safe):
    assert sanitize_name(raw) == safe


def test_store_lives_under_kdstudio_home(kdstudio_home):
    assert projects_root() == kdstudio_home / "projects"
    assert settings_path() == kdstudio_home / "settings.json"
    assert ProjectStore().root == kdstudio_home / "projects"


def test_create_list_rename_duplicate_delete(kdstudio_home):
    store = ProjectStore()
    a = store.create("Digits demo", demo_config())
    assert (a.path / "project.toml").is_file() and (a.path / "runs").is_dir()
    assert config_mod.load(a.file).to_dict() == demo_config().to_dict()
    b = store.create("Digits demo")  # same name: made unique, blank config
    assert b.name == "Digits demo 2" and b.config.to_dict() == config_mod.Config().to_dict()
    assert [p.name for p in store.list()] == ["Digits demo", "Digits demo 2"]

    renamed = store.rename(b, "my/blank")
    assert renamed.name == "my_blank" and not b.path.exists()
    with pytest.raises(KDError, match="already exists"):
        store.rename(renamed, "Digits demo")

    (a.runs_dir / "20250101-000000").mkdir()
    copy = store.duplicate(a)
    assert copy.name == "Digits demo copy"
    assert copy.config.to_dict() == a.config.to_dict() and copy.runs() == []

    store.delete(copy)
    assert not copy.path.exists()
    assert [p.name for p in store.list()] == ["Digits demo", "my_blank"]


def test_delete_refuses_paths_outside_the_store(tmp_path):
    store = ProjectStore()
    outside = store.create("x")
    outside.path = tmp_path / "elsewhere"
    (outside.path).mkdir()
    (outside.path / "project.toml").write_text("seed = 1\n")
    with pytest.raises(KDError, match="not a project folder"):
        store.delete(outside)
    assert outside.path.exists()


def test_damaged_project_is_listed_with_reason_and_never_overwritten():
    store = ProjectStore()
    p = store.create("broken")
    p.file.write_text("[distill\ntemperature = 4\n")
    listed = store.list()[0]
    assert listed.damaged and "TOML syntax error" in listed.error and listed.config is None
    with pytest.raises(KDError, match="not overwritten"):
        listed.save(config_mod.Config())
    assert p.file.read_text() == "[distill\ntemperature = 4\n"
    p.file.write_text("[distill]\ntemprature = 4\n")
    assert "Did you mean 'distill.temperature'" in store.get("broken").error
    with pytest.raises(KDError):
        listed.save_text("[distill\n")  # bad text does not replace the file either
    repaired = listed.save_text("[distill]\ntemperature = 2.0\n")
    assert repaired.distill.temperature == 2.0 and not store.get("broken").damaged


def test_import_config_makes_a_project(tmp_path):
    src = tmp_path / "exp.toml"
    src.write_text("# my sweep\n[distill]\ntemperature = 3.0  # tried 2 and 4\nepochs = 5\n")
    p = ProjectStore().import_config(src)
    assert p.name == "exp" and p.config.distill.temperature == 3.0 and p.config.distill.epochs == 5
    assert p.file.read_text() == src.read_text()  # copied as written, comments included
    bad = tmp_path / "bad.toml"
    bad.write_text("[distill]\nnope = 1\n")
    with pytest.raises(KDError, match="Unknown setting 'distill.nope'"):
        ProjectStore().import_config(bad)
    assert [x.name for x in ProjectStore().list()] == ["exp"]


def test_runs_are_listed_newest_first_with_status_and_headline():
    p = ProjectStore().create("r")
    old, new, bare = p.runs_dir / "a", p.runs_dir / "b", p.runs_dir / "c"
    for d in (old, new, bare):
        d.mkdir()
    (old / "summary.json").write_text(json.dumps({"status": "stopped", "started": "2025-01-01T10:00:00"}))
    (new / "summary.json").write_text(json.dumps({
        "status": "completed", "started": "2025-02-01T10:00:00", "teacher": {"accuracy": 0.99},
        "student": {"accuracy": 0.97}, "baseline": {"accuracy": 0.95}, "kd_gain": 0.02,
        "compression": {"params_ratio": 39.0, "speedup_cpu_b1": 7.0}}))
    runs = p.runs()
    assert [r.name for r in runs][:2] == ["c", "b"] or [r.name for r in runs][0] == "b"
    by = {r.name: r for r in runs}
    assert by["c"].status == "incomplete" and by["a"].status == "stopped"
    h = by["b"].headline()
    assert h == {"teacher": 0.99, "student": 0.97, "baseline": 0.95, "kd_gain": 0.02, "kd_gain_stats": None,
                 "params_ratio": 39.0, "speedup": 7.0}
    p.delete_run(by["a"])
    assert not old.exists()


def test_settings_recent_and_corrupt_file(kdstudio_home):
    s = Settings()
    for name in ["a", "b", "a", "c"]:
        s.touch_recent(name)
    s.save()
    again = Settings()
    assert again.recent == ["c", "a", "b"] and again.get("last_project") == "c"
    again.forget("c")
    assert again.recent == ["a", "b"] and again.get("last_project") is None
    settings_path().write_text("{not json")
    assert Settings().recent == []
