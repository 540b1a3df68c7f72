"""Never train the same teacher twice: the teacher store, reuse by later runs and sweep points, the sweep's shared
baselines, explicit picks, deletion, resume, and the Teacher page's list."""

import json
from pathlib import Path

import pytest
import torch

from kdstudio.core import config as config_mod
from kdstudio.core import events
from kdstudio.core.errors import KDError
from kdstudio.core.pipeline import engine
from kdstudio.core.store.projects import ProjectStore
from kdstudio.core.store.teachers import TeacherStore, store_root
from tests.helpers import assert_stop_mid_epoch_then_resume_equals_uninterrupted, tiny_config


def _run(cfg, out):
    seen = []
    summary = engine.run(cfg, out, on_event=seen.append)
    return summary, seen


def _epochs(seen, stage):
    return sum(1 for e in seen if e.kind == events.EPOCH and e.stage == stage)


def _config(**overrides):
    """A tiny digits run without a baseline, exports or latency timing (what reuse changes is the teacher)."""
    cfg = tiny_config(**{"baseline.enabled": False, "distill.epochs": 1, "evaluate.latency_repeats": 0,
                         **overrides})
    cfg.export.formats = []
    return cfg


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """One finished run that trained (and stored) its teacher: (root, summary, events)."""
    root = tmp_path_factory.mktemp("reuse")
    summary, seen = _run(_config(), root / "a")
    return root, summary, seen


def test_a_second_run_with_the_same_settings_trains_no_teacher_and_gives_the_same_student(first, tmp_path):
    root, a, seen_a = first
    assert _epochs(seen_a, "teacher") == 2 and a["teacher"].get("reused_from") is None
    [stored] = TeacherStore(root / "teachers").list()
    assert a["teacher"]["stored_id"] == stored.id and stored.run == "a"
    assert stored.accuracy == pytest.approx(a["teacher"]["accuracy"])

    b, seen_b = _run(_config(), root / "b")
    assert _epochs(seen_b, "teacher") == 0
    assert b["teacher"]["reused_from"] == "a" and b["teacher"]["stored_id"] == stored.id
    assert b["teacher"]["accuracy"] == a["teacher"]["accuracy"]
    assert "Teacher: reused from run a" in (root / "b" / "log.txt").read_text()
    assert [e.data.get("reused_from") for e in seen_b if e.kind == events.LOG and e.stage == "teacher"] == ["a"]
    plan = next(e for e in seen_b if e.kind == events.RUN_STARTED).data["plan"]
    assert [(s["name"], s["done"]) for s in plan["runs"][0]["stages"][:2]] == [("teacher", True), ("distill", False)]
    assert plan["description"] == "distill 1 epoch, then evaluate (teacher done)"
    wa = torch.load(root / "a" / "checkpoints" / "distill.pt", weights_only=True)["model"]
    wb = torch.load(root / "b" / "checkpoints" / "distill.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # the same teacher distils the same student
    assert (root / "b" / "checkpoints" / "teacher.pt").is_file()  # its own copy: eval/export read it there
    from kdstudio.core.outputs import artifacts
    loaded = artifacts.load_run(root / "b", variants=False)
    assert "teacher" in loaded.models and not [n for n in loaded.notes if "teacher" in n]


def test_teachers_live_in_the_project_or_beside_a_project_less_run(tmp_path):
    project = ProjectStore(tmp_path / "projects").create("Where")
    assert store_root(project.new_run_dir()) == project.path / "teachers"
    assert store_root(tmp_path / "runs" / "a") == (tmp_path / "runs" / "teachers").resolve()


def test_a_changed_teacher_setting_or_reuse_never_trains_a_new_one(first):
    root, _a, _ = first
    c, seen = _run(_config(**{"teacher.lr": 3e-3}), root / "c")
    assert _epochs(seen, "teacher") == 2 and c["teacher"].get("reused_from") is None
    d, seen = _run(_config(**{"teacher.reuse": "never"}), root / "d")
    assert _epochs(seen, "teacher") == 2 and d["teacher"].get("reused_from") is None
    ids = {t.id for t in TeacherStore(root / "teachers").list()}
    assert c["teacher"]["stored_id"] in ids and len(ids) == 2  # "never" trains again; its key is stored already


def test_a_sweep_over_temperature_and_two_seeds_trains_two_teachers_and_two_baselines(tmp_path):
    cfg = _config(**{"baseline.enabled": True})
    cfg.run.seeds, cfg.run.sweep = [0, 1], {"distill.temperature": [2.0, 4.0]}
    seen = []
    result = engine.run(cfg, tmp_path / "sweep", on_event=seen.append)
    assert result["status"] == "completed" and len(result["runs"]) == 4
    assert _epochs(seen, "teacher") == 4 and _epochs(seen, "baseline") == 2  # 2 teachers × 2 epochs, 2 baselines × 1
    later = [json.loads(Path(r["folder"], "summary.json").read_text()) for r in result["runs"][2:]]
    assert [s["teacher"]["reused_from"] for s in later] == ["sweep/temperature-2/seed-0", "sweep/temperature-2/seed-1"]
    assert [s["baseline"]["reused_from"] for s in later] == ["sweep/temperature-2/seed-0", "sweep/temperature-2/seed-1"]
    assert [r["baseline"]["accuracy"] for r in result["runs"][2:]] == [r["baseline"]["accuracy"]
                                                                       for r in result["runs"][:2]]
    plan = next(e for e in seen if e.kind == events.RUN_STARTED).data["plan"]
    done = [{s["name"] for s in run["stages"] if s["done"]} for run in plan["runs"]]
    assert done == [set(), set(), {"teacher", "baseline"}, {"teacher", "baseline"}]
    assert len(TeacherStore(tmp_path / "teachers").list()) == 2


def test_deleting_the_run_that_trained_a_teacher_keeps_it_for_later_runs(tmp_path):
    project = ProjectStore(tmp_path / "projects").create("Reuse", _config())
    first = project.new_run_dir()
    engine.run(project.config.copy(), first)
    store = TeacherStore(store_root(first))
    assert store.root == project.path / "teachers"
    [stored] = store.list()
    assert stored.run == first.name and store.users(stored.id, project.runs()) == [first.name]
    project.delete_run(project.runs()[0])
    assert store.get(stored.id) is not None
    again, seen = _run(project.config.copy(), project.new_run_dir())
    assert _epochs(seen, "teacher") == 0 and again["teacher"]["reused_from"] == first.name

    picked = project.config.copy()
    picked.teacher.reuse = stored.id
    with pytest.raises(KDError, match="teacher.reuse picks it"):
        store.delete(stored.id, picked)
    store.delete(stored.id, project.config)
    assert store.list() == [] and not (store.root / stored.id).exists()


def test_an_explicit_pick_is_validated_and_used(first, tmp_path):
    root, a, _ = first
    assert any(k == "teacher.reuse" for k, _m in config_mod.problems(_config(**{"teacher.reuse": "latest"})))
    assert any(k == "teacher.reuse" for k, _m in config_mod.problems(
        _config(**{"teacher.reuse": "0123456789ab", "teacher.source": "file", "teacher.path": __file__})))
    with pytest.raises(KDError, match="no stored teacher has that id"):
        engine.run(_config(**{"teacher.reuse": "0123456789ab"}), root / "missing")
    other_seed, seen = _run(_config(**{"teacher.reuse": a["teacher"]["stored_id"], "seed": 3}), root / "picked")
    assert _epochs(seen, "teacher") == 0 and other_seed["teacher"]["reused_from"] == "a"
    assert any(e.kind == events.WARNING and "may have seen this run's test samples" in e.data["message"] for e in seen)


def test_a_half_written_or_cut_teacher_is_never_reused(first, tmp_path):
    root, a, _ = first
    store = TeacherStore(root / "teachers")
    src = store.get(a["teacher"]["stored_id"])
    half = TeacherStore(tmp_path / "teachers")
    (half.root / src.id).mkdir(parents=True)
    (half.root / src.id / "teacher.pt").write_bytes(src.weights.read_bytes())  # weights, but no teacher.json
    assert half.get(src.id) is None and half.list() == []
    meta = json.loads((src.folder / "teacher.json").read_text())
    (half.root / src.id / "teacher.json").write_text(json.dumps(meta))
    assert half.get(src.id) is not None
    (half.root / src.id / "teacher.pt").write_bytes(src.weights.read_bytes()[:100])  # cut short
    assert half.get(src.id) is None


def test_resume_works_with_a_reused_teacher(tmp_path):
    cfg = _config(**{"distill.epochs": 2})
    assert_stop_mid_epoch_then_resume_equals_uninterrupted(cfg, tmp_path)  # the stopped run reused "full"'s teacher
    summary = json.loads((tmp_path / "part" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["teacher"]["reused_from"] == "full"
    assert "Teacher: reused from run full" in (tmp_path / "part" / "log.txt").read_text()


def test_the_teacher_page_lists_the_stored_teacher_and_picks_it(window, qtbot, monkeypatch):
    pytest.importorskip("pytestqt")
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QMessageBox
    window.panel.new_project("Teachers")
    window.model.replace(_config())
    window.model.save_now()
    project = window.model.project
    run = project.new_run_dir()
    engine.run(project.config.copy(), run)
    window.show_page("Teacher")
    page = window.pages["Teacher"]
    listing = page.stored
    qtbot.waitUntil(lambda: listing.tree.topLevelItemCount() == 1, timeout=10_000)
    item = listing.tree.topLevelItem(0)
    stored = TeacherStore(project.path / "teachers").list()[0]
    assert item.text(0) == stored.id and item.text(2) == run.name and item.text(3) == "1 run"
    assert item.text(1).endswith("%") and "cnn (width 8, depth 2)" in item.text(5)
    reuse_box = page.form.fields["teacher.reuse"].editor
    assert [reuse_box.itemData(i) for i in range(reuse_box.count())] == ["auto", "never", stored.id]
    rect = listing.tree.visualItemRect(item)
    qtbot.mouseClick(listing.tree.viewport(), Qt.LeftButton, pos=rect.center())
    qtbot.mouseClick(listing.use_btn, Qt.LeftButton)
    assert window.model.cfg.teacher.reuse == stored.id
    assert "(picked)" in listing.tree.topLevelItem(0).text(0)
    page.grab().save("/tmp/reuse-teacher-page.png")

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    warned = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _w, _t, text: warned.append(text))
    qtbot.mouseClick(listing.delete_btn, Qt.LeftButton)  # refused: teacher.reuse picks it
    assert warned and "in use" in warned[0] and TeacherStore(project.path / "teachers").get(stored.id)
    qtbot.mouseClick(listing.auto_btn, Qt.LeftButton)
    assert window.model.cfg.teacher.reuse == "auto"
    rect = listing.tree.visualItemRect(listing.tree.topLevelItem(0))
    qtbot.mouseClick(listing.tree.viewport(), Qt.LeftButton, pos=rect.center())
    qtbot.mouseClick(listing.delete_btn, Qt.LeftButton)
    assert TeacherStore(project.path / "teachers").list() == [] and listing.tree.topLevelItemCount() == 0


def test_the_live_view_names_the_run_a_teacher_was_reused_from(tmp_path):
    from kdstudio.gui.pages.live import LiveRun
    live, seen = LiveRun(_config(), tmp_path), []
    emit = events.Emitter(seen.append)
    emit(events.LOG, "teacher", message="Teacher: reused from run a (stored teacher 0123456789ab).", reused_from="a")
    emit(events.LOG, "distill", message="Teacher-output cache on.", teacher_cache=True)
    lines = live.ingest(seen)
    assert live.reused == {"teacher": "a"} and lines[0][0].startswith("Teacher: reused from run a")


def test_a_teacher_that_cannot_be_stored_is_a_warning_and_the_run_goes_on(tmp_path):
    (tmp_path / "teachers").write_text("a file where the teachers/ folder would be")
    summary, seen = _run(_config(), tmp_path / "run")
    assert summary["status"] == "completed" and summary["teacher"].get("stored_id") is None
    assert any(e.kind == events.WARNING and "not stored for later runs" in e.data["message"] for e in seen)


def test_the_key_follows_what_changes_the_teacher_and_nothing_else(tmp_path):
    from kdstudio.core.pipeline.reuse import baseline_key, teacher_key
    base = _config()
    same = [{"data.workers": 3, "data.mode": "resident"}, {"distill.temperature": 2.0, "distill.method": "dkd"},
            {"device": "cpu", "export.formats": ["onnx"]}]
    other = [{"teacher.epochs": 3}, {"data.val_fraction": 0.1}, {"seed": 1}, {"distill.optimizer": "sgd"},
             {"data.augment": "shift"}, {"teacher.width": 16}]
    for change in same:
        assert teacher_key(_config(**change))[0] == teacher_key(base)[0], change
    for change in other:
        assert teacher_key(_config(**change))[0] != teacher_key(base)[0], change
    assert baseline_key(_config(**{"distill.temperature": 2.0, "distill.alpha": 0.5})) == baseline_key(base)
    assert baseline_key(_config(**{"distill.lr": 0.01})) != baseline_key(base)
    assert baseline_key(_config(**{"student.width": 32})) != baseline_key(base)


def test_the_key_holds_every_data_setting_at_its_value_so_a_changed_default_trains_anew(monkeypatch):
    """A key of only the settings that differ from today's defaults made a run reuse the teacher of the old quick
    try after the synthetic source's defaults changed: the key holds each value, and the generator's code."""
    from kdstudio.core.pipeline import reuse
    cfg = _config(**{"data.source": "synthetic"})
    _id, inputs = reuse.teacher_key(cfg)
    assert set(cfg.to_dict()["data"]) - set(reuse.FEED_ONLY) <= set(inputs["data"])
    assert inputs["data"]["synthetic_label_noise"] == cfg.data.synthetic_label_noise
    old_defaults = _config(**{"data.source": "synthetic", "data.synthetic_noise": 1.5,
                              "data.synthetic_label_noise": 0.0})
    assert reuse.teacher_key(old_defaults)[0] != _id
    real = reuse._hash_file
    monkeypatch.setattr(reuse, "_hash_file", lambda path: "edited" if Path(path).name == "synthetic.py" else real(path))
    assert reuse.teacher_key(cfg)[0] != _id
