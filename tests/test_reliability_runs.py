"""Issue 15, sections 4-5: runs can always go on, and inputs that are only unusual are read or refused in one
sentence. Each test is one row (or a few) of docs/RELIABILITY.md."""

import json
import os
import socket
import subprocess
import sys
import warnings

import pytest

import faults
from helpers import tiny_config
from reliability_helpers import quick, finished, copy_run, as_stopped, one_error_line  # noqa: F401 (finished is a fixture)
from kdstudio.cli import main
from kdstudio.core import config
from kdstudio.core.errors import KDError
from kdstudio.core.pipeline import engine
from kdstudio.core.store import summary as summary_mod
from kdstudio.core.store.files import RunDir
from kdstudio.core.store.lock import LOCK_NAME, FolderLock, LockedError
from kdstudio.core.store.projects import ProjectStore

warnings.filterwarnings("ignore", category=DeprecationWarning)


# ---- 4. runs that can always go on ---------------------------------------------------------------------------

def test_a_run_killed_before_its_first_checkpoint_restarts_on_resume(tmp_path, capsys):
    config.save(quick(), tmp_path / "c.toml")
    out = tmp_path / "r"
    assert faults.run_killed(tmp_path / "c.toml", out, "stage_started") == -9
    assert not list((out / "checkpoints").glob("*.pt"))
    assert main(["run", "--resume", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "starts again from the beginning" in err
    assert summary_mod.read(out / "summary.json").status == "completed"


def test_a_run_killed_after_a_checkpoint_resumes(tmp_path):
    config.save(quick(), tmp_path / "c.toml")
    out = tmp_path / "r"
    assert faults.run_killed(tmp_path / "c.toml", out, "checkpoint") == -9
    assert engine.run(None, out, resume=True)["status"] == "completed"


def test_a_second_process_on_one_run_folder_is_refused(tmp_path, finished):
    run = as_stopped(copy_run(finished, tmp_path / "run"))
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / LOCK_NAME).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                                 "started": "2026-12-01T10:00:00"}))
        with pytest.raises(LockedError, match=f"in use by process {holder.pid} here since 2026-12-01T10:00:00"):
            engine.run(None, run, resume=True)
    finally:
        holder.kill()
        holder.wait()
    assert engine.run(None, run, resume=True)["status"] == "completed"  # its process is gone: taken over
    assert not (run / LOCK_NAME).exists()


def test_a_lock_of_another_host_is_reported_not_taken(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "x"}))
    with pytest.raises(LockedError, match="on elsewhere"):
        FolderLock(tmp_path).acquire()
    (tmp_path / LOCK_NAME).write_text("{torn")
    with FolderLock(tmp_path) as lock:  # a damaged lock file is a crash while writing it: taken over
        assert lock.held


def test_projects_are_opened_by_their_folder(kdstudio_home):
    store = ProjectStore()
    root = store.root
    for name in ("R&D", "R_D", "nul", "x.", "n" * 70):
        (root / name / "runs").mkdir(parents=True)
        config.save(tiny_config(seed=len(name)), root / name / "project.toml")
    for name in ("R&D", "R_D", "nul", "x.", "n" * 70):
        p = store.get(name)
        assert p is not None and p.path.name == name and p.config.seed == len(name)
    store.delete(store.get("R&D"))
    assert not (root / "R&D").exists() and (root / "R_D").exists()


def test_autosave_does_not_recreate_a_project_deleted_outside(kdstudio_home):
    import shutil
    store = ProjectStore()
    p = store.create("gone", tiny_config())
    shutil.rmtree(p.path)
    with pytest.raises(KDError, match="deleted outside KD Studio"):
        p.save(tiny_config(seed=3))
    assert not p.path.exists()


def test_fault_helpers_corrupt_a_chosen_byte(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    faults.corrupt(f, 1, ord("X"))
    assert f.read_bytes() == b"aXc" and faults.truncated(b"abc", 2) == b"ab"


def test_the_run_folder_lock_is_released_after_a_failed_run(tmp_path):
    blocker = tmp_path / "data.npz"
    blocker.write_text("not an npz")
    cfg = quick(**{"data.source": "tensors", "data.path": str(blocker)})
    with pytest.raises(KDError):
        engine.run(cfg, tmp_path / "r")
    assert not (tmp_path / "r" / LOCK_NAME).exists()
    assert RunDir(tmp_path / "r").config.exists()


def test_resume_of_a_completed_run_refuses_and_keeps_its_exports(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path / "run")
    before = {p.name: p.stat().st_mtime_ns for p in (run / "exports").iterdir()}
    err = one_error_line(capsys, ["run", "--resume", "--out", str(run)])
    assert "holds a finished run; there is nothing to resume" in err and "--force" in err
    assert {p.name: p.stat().st_mtime_ns for p in (run / "exports").iterdir()} == before


# ---- 5. inputs that are only unusual ---------------------------------------------------------------------------

def test_a_config_with_a_utf8_bom_is_read(tmp_path):
    (tmp_path / "c.toml").write_bytes("\ufeffseed = 7\n".encode("utf-8"))
    assert config.load(tmp_path / "c.toml").seed == 7


def test_a_config_path_that_is_a_folder_says_so(tmp_path, capsys):
    assert "is a folder; give the .toml file inside it" in one_error_line(capsys, ["run", str(tmp_path)])


@pytest.mark.parametrize("setting, says", [("seed=99999999999999999999", "at most 4,294,967,295"),
                                           ("data.image_size=100000", "at most 4,096")])
def test_huge_numbers_on_the_command_line_are_one_sentence(tmp_path, capsys, setting, says):
    config.save(quick(), tmp_path / "c.toml")
    err = one_error_line(capsys, ["run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r"), "--set", setting])
    assert says in err


def test_eval_into_a_closed_pipe_ends_quietly(finished):
    env = {**os.environ, "PYTHONPATH": str(__import__("pathlib").Path(__file__).parents[1])}
    p = subprocess.Popen([sys.executable, "-m", "kdstudio.cli", "eval", str(finished), "--repeats", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.close()  # as `| head` does once it has its lines
    err = p.stderr.read().decode()
    assert p.wait() == 141 and "unexpected error" not in err and "BrokenPipe" not in err, err


def test_the_app_without_a_display_says_so_instead_of_aborting(monkeypatch, capsys):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    err = one_error_line(capsys, ["gui"])
    assert "no display here" in err and "kdstudio demo" in err


def test_export_of_a_read_only_run_to_another_folder_writes_files_and_card(finished, tmp_path, capsys, monkeypatch):
    import errno
    from kdstudio.core.outputs import artifacts
    from kdstudio.core.store.files import write_error
    run = copy_run(finished, tmp_path / "run")

    def read_only(path, summary):
        raise write_error(path, OSError(errno.EROFS, "Read-only file system"))
    monkeypatch.setattr(artifacts.summary_mod, "write", read_only)
    assert main(["export", str(run), "--format", "state_dict", "--out", str(tmp_path / "x")]) == 0
    err = capsys.readouterr().err
    assert "does not list this export" in err and "Read-only file system" in err
    assert (tmp_path / "x" / "student.state_dict.pt").is_file() and (tmp_path / "x" / "MODEL_CARD.md").is_file()


def test_a_later_successful_export_clears_the_recorded_failure(finished, tmp_path):
    from kdstudio.core.outputs import artifacts
    run = copy_run(finished, tmp_path / "run")
    s = summary_mod.read(run / "summary.json")
    s.export_failed = [{"format": "state_dict", "error": "the disk was full"}]
    summary_mod.write(run / "summary.json", s)
    artifacts.export_run(run, ["state_dict"], out=tmp_path / "x", latency_repeats=0)
    assert summary_mod.read(run / "summary.json").export_failed == []


def _npz(tmp_path, y, n=200):
    import numpy as np
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.normal(size=(n, 8)).astype("float32"), y=np.asarray(y, dtype="int64"))
    return path


def test_a_huge_label_id_is_refused_before_anything_is_sized_by_it(tmp_path):
    from kdstudio.core.data import load_data
    y = [0, 1] * 99 + [1, 999_999_999]
    cfg = quick(**{"data.source": "tensors", "data.path": str(_npz(tmp_path, y))})
    with pytest.raises(KDError, match="go up to 999,999,999 for 3 distinct classes; labels must be class indices"):
        load_data(cfg)


def test_a_one_class_data_set_is_refused(tmp_path):
    from kdstudio.core.data import load_data
    cfg = quick(**{"data.source": "tensors", "data.path": str(_npz(tmp_path, [0] * 200))})
    with pytest.raises(KDError, match="holds only one class"):
        load_data(cfg)


def test_a_link_to_the_image_folder_itself_is_not_a_class(tmp_path):
    from PIL import Image
    from kdstudio.core.data import load_data
    root = tmp_path / "images"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(20):
            Image.new("RGB", (8, 8), (i * 10, 0, 0)).save(root / c / f"{i}.png")
    (root / "all").symlink_to(root)
    cfg = quick(**{"data.source": "folder", "data.path": str(root)})
    with pytest.raises(KDError, match="holds the image folder itself; remove that link"):
        load_data(cfg)


def test_a_custom_architecture_leaves_no_pycache_beside_the_users_file(tmp_path):
    from kdstudio.core import models, trust
    f = tmp_path / "net.py"
    f.write_text("import torch\ndef make(num_classes):\n    return torch.nn.Linear(64, num_classes)\n")
    trust.grant(f)
    models.build(f"{f}:make", 10, (1, 8, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.py"]


def test_a_save_keeps_the_values_another_process_changed(kdstudio_home):
    store = ProjectStore()
    here = store.create("shared", tiny_config())
    elsewhere = store.get("shared")  # a second window or process, reading the same file
    theirs = elsewhere.config.copy()
    theirs.set("teacher.epochs", 7)
    elsewhere.save(theirs)
    mine = here.config.copy()
    mine.set("seed", 5)
    here.save(mine)
    on_disk = store.get("shared").config
    assert on_disk.teacher.epochs == 7 and on_disk.seed == 5 and here.config.teacher.epochs == 7


def test_the_window_takes_outside_changes_when_it_saves(window, qtbot):
    store = ProjectStore()
    project = store.create("shared", tiny_config())
    window.model.set_project(project)
    other = store.get("shared")
    theirs = other.config.copy()
    theirs.set("teacher.epochs", 9)
    other.save(theirs)
    window.model.set("seed", 4)
    assert window.model.save_now()
    assert window.model.cfg.teacher.epochs == 9 and window.model.cfg.seed == 4
    assert "outside this window" in window.save_label.text()


def test_no_validation_split_is_said_in_words_and_written_as_null(tmp_path):
    from kdstudio.core import events
    assert "no validation split" in events.epoch_line({"epoch": 1, "epochs": 2, "val_acc": None})
    s = engine.run(quick(**{"data.val_fraction": 0.0, "export.formats": []}), tmp_path / "r")
    text = (tmp_path / "r" / "summary.json").read_text()
    assert "NaN" not in text and s["status"] == "completed"
    assert "nan%" not in (tmp_path / "r" / "log.txt").read_text()


@pytest.mark.parametrize("text", ["[1, 2]", '{"rows": 5, "runs": "x"}', '{"rows": [1, {"best": true, "student": 3}]}',
                                  "{torn"])
def test_a_damaged_sweep_json_is_one_incomplete_or_odd_sweep_not_a_stopped_list(kdstudio_home, text):
    store = ProjectStore()
    p = store.create("sweeps", tiny_config())
    sweep = p.runs_dir / "20260101-000000"
    sweep.mkdir(parents=True)
    (sweep / "sweep.toml").write_text("")
    (sweep / "sweep.json").write_text(text)
    (run,) = p.runs()
    assert run.is_sweep or run.status == "incomplete"
    run.headline()
    run.sub_runs()


def test_a_second_window_on_a_project_is_read_only_until_the_first_closes(window, qtbot):
    from kdstudio.gui.main_window import MainWindow
    project = ProjectStore().create("shared", tiny_config())
    window.model.set_project(project)
    second = MainWindow()
    qtbot.addWidget(second)
    second.model.set_project(ProjectStore().get("shared"))
    assert second.model.read_only and "in use by process" in second.model.read_only
    assert "Read-only" in second.save_label.text()
    second.model.set("seed", 11)
    assert not second.model.save_now() and ProjectStore().get("shared").config.seed != 11
    window.model.set("seed", 12)
    assert window.model.save_now() and ProjectStore().get("shared").config.seed == 12
    window.close()
    second.model.set_project(ProjectStore().get("shared"))  # opened again: the first window has let go
    assert second.model.read_only is None
    second.close()


def test_a_lock_carried_along_by_a_renamed_folder_is_taken_over(tmp_path):
    (tmp_path / "old").mkdir()
    lock = FolderLock(tmp_path / "old", "project").acquire()
    (tmp_path / "old").rename(tmp_path / "new")
    lock.release()  # its file moved with the folder
    with FolderLock(tmp_path / "new", "project") as again:
        assert again.held


def test_a_second_resume_of_a_sweep_is_refused(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        cfg = quick(**{"run.seeds": [0, 1]})
        (tmp_path / "s").mkdir()
        config.save(cfg, tmp_path / "s" / "sweep.toml")
        (tmp_path / "s" / LOCK_NAME).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                                            "started": "2026-12-01T10:00:00"}))
        with pytest.raises(LockedError, match="The sweep folder .* is in use by process"):
            engine.run(None, tmp_path / "s", resume=True)
    finally:
        holder.kill()
        holder.wait()
