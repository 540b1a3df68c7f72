"""GPUs > 1 from the window: torchrun as a subprocess (2 gloo CPU processes here), followed from the run folder's
events.jsonl; pause, resume and stop by clicking; processes that end without a word are one sentence."""

import json
import sys

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QToolButton  # noqa: E402

from kdstudio.core import events as ev  # noqa: E402
from kdstudio.core.store.event_log import EventFollower, encode  # noqa: E402
from kdstudio.core.store.files import read_json  # noqa: E402
from kdstudio.core.train.checkpoints import read_checkpoint  # noqa: E402
from kdstudio.gui import status_gpu  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402

RUN_TIMEOUT_MS = 180_000


def _line(e: ev.Event) -> bytes:
    return (json.dumps(encode(e)) + "\n").encode()


def test_follower_reads_only_new_bytes_and_waits_for_a_half_written_line(tmp_path):
    path = tmp_path / "events.jsonl"
    follow = EventFollower(path)
    assert follow.poll() == []  # no file yet
    step = ev.Event(ev.STEP, "distill", {"epoch": 1, "epochs": 2, "step": 3, "steps": 9, "global_step": 3,
                                         "lr": 0.1, "samples_per_s": 5.0, "terms": {"total": 0.5}})
    done = _line(ev.Event(ev.RUN_FINISHED, None, {"summary": {"status": "completed"}}))
    path.write_bytes(_line(ev.Event(ev.LOG, None, {"message": "hello"})) + _line(step) + done[:10])
    got = follow.poll()
    assert [e.kind for e in got] == [ev.LOG, ev.STEP]
    assert got[1].payload.terms == {"total": 0.5} and got[1].stage == "distill"
    assert follow.poll() == []  # nothing new: the half line waits
    with open(path, "ab") as fh:
        fh.write(done[10:] + b'{"kind": "no_such_kind", "data": {}}\n')
    [end] = follow.poll()  # the completed line, once; an unknown kind is skipped
    assert end.kind == ev.RUN_FINISHED and end.data["summary"]["status"] == "completed"
    assert EventFollower(path, from_end=True).poll() == []  # a resume follows only what it adds


def _project(window, cfg):
    window.panel.new_project("Two")
    window.model.replace(cfg)
    window.model.save_now()
    return window.model.project


def _gpus(window, monkeypatch, count: int):
    """This machine has `count` CUDA devices (as torch would say once loaded); the Train page on screen."""
    monkeypatch.setattr(status_gpu, "cuda_device_count", lambda: count)
    window.show_page("Train")
    window.train.controls.refresh_gpus()  # what the catalogue's arrival (torch loaded) does
    return window.train.controls.gpus


def _click(window, qtbot, action) -> None:
    [button] = [b for b in window.train.controls.findChildren(QToolButton) if b.defaultAction() is action]
    assert button.isEnabled(), f"{action.text().strip()} is disabled"
    qtbot.mouseClick(button, Qt.LeftButton)


def _pick_two(qtbot, combo) -> None:
    """Choose 2 the way a person does with the keyboard: focus the GPUs box, press the Down arrow."""
    assert combo.isVisible() and combo.count() == 2 and combo.currentText() == "1"
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key_Down)
    assert combo.currentText() == "2"


def test_one_device_hides_the_gpus_control(window, qtbot, monkeypatch):
    combo = _gpus(window, monkeypatch, 1)
    assert combo.isHidden() and window.train.controls.gpus_label.isHidden() and window.run.processes == 1
    combo = _gpus(window, monkeypatch, 4)
    assert combo.isVisible() and [combo.itemText(i) for i in range(combo.count())] == ["1", "2", "3", "4"]
    assert window.run.processes == 1  # 1 until the person picks more
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key_End)
    assert window.run.processes == 4
    assert _gpus(window, monkeypatch, 1).isHidden() and window.run.processes == 1  # devices gone: one process


def test_two_processes_pause_resume_stop_then_resume_to_completion(window, qtbot, monkeypatch):
    cfg = tiny_config(device="cpu")
    # batches of 4 on each of 2 processes: ~900 distill steps, ~5 s here, so that a Stop clicked after the
    # first curves lands in training (12 epochs of the default batch finished in under a second, before any click)
    for key, value in {"teacher.epochs": 1, "teacher.skip_sanity_check": True, "baseline.enabled": False,
                       "distill.epochs": 6, "data.batch_size": 4, "distill.log_every": 20}.items():
        cfg.set(key, value)
    project = _project(window, cfg)
    _pick_two(qtbot, _gpus(window, monkeypatch, 2))
    assert window.run.processes == 2
    _click(window, qtbot, window.run.start_act)
    assert window.run.running and not window.train.controls.gpus.isEnabled()
    run_dir = window.run.run_dir

    def steps(stage=None):
        series = window.train.live_series
        return 0 if series is None else sum(len(v) for (st, term), v in series.step.items()
                                            if term == "total" and stage in (None, st))
    # Pause while torchrun still starts: rank 0 finds the pause file at its first step, whatever the machine's speed
    _click(window, qtbot, window.run.pause_act)
    assert window.run.state == "paused"
    qtbot.waitUntil(lambda: (run_dir / "pause").exists(), timeout=5_000)  # rank 0 reads it, the others wait too
    qtbot.waitUntil(lambda: any(line.text == "Paused." for line in window.run.log_lines), timeout=RUN_TIMEOUT_MS)
    frozen = steps()
    qtbot.wait(1500)  # both ranks wait: no step is logged meanwhile
    assert steps() == frozen and window.run.state == "paused"
    _click(window, qtbot, window.run.resume_act)
    qtbot.waitUntil(lambda: steps("distill") >= 1, timeout=RUN_TIMEOUT_MS)  # the plots fill from the folder
    assert not (run_dir / "pause").exists()
    assert window.train.live_series.teacher_reference() is not None
    qtbot.waitUntil(lambda: window.train.bar.value() > 0, timeout=5_000)  # the bar redraws every 250 ms

    _click(window, qtbot, window.run.stop_act)
    qtbot.waitUntil(lambda: not window.run.running, timeout=RUN_TIMEOUT_MS)
    assert window.run.last_error is None, window.run.last_error
    assert window.run.last_summary["status"] == "stopped"
    saved = read_checkpoint(run_dir / "checkpoints" / "distill.pt")
    assert not saved["complete"] and saved["world"] == 2  # one checkpoint, of both ranks' positions
    launch_log = (run_dir / "torchrun.log").read_text()
    assert "lost the other processes" not in launch_log  # rank 1 stopped at the same step
    assert (run_dir / "log.txt").read_text().count("Stopped on request") == 1

    # Resume run, still on 2 processes: the window follows only what the resumed run adds
    window.train.history.select_paths([run_dir])
    qtbot.mouseClick(window.train.history.resume_btn, Qt.LeftButton)
    assert window.run.running
    qtbot.waitUntil(lambda: not window.run.running, timeout=RUN_TIMEOUT_MS)
    assert window.run.last_error is None, window.run.last_error
    summary = window.run.last_summary
    assert summary["status"] == "completed" and summary["device"] == "cpu × 2 processes (gloo)"
    assert read_json(run_dir / "summary.json")["status"] == "completed"
    assert window.train.bar.value() == 1000 and window.train.bar.format() == "completed"
    assert [(r.path, r.status) for r in window.train.history.runs] == [(run_dir, "completed")]
    assert run_dir.parent == project.runs_dir
    assert window.train.controls.gpus.isEnabled()


def test_processes_that_end_without_a_word_are_one_sentence(window, qtbot, monkeypatch):
    _project(window, tiny_config(device="cpu"))
    _pick_two(qtbot, _gpus(window, monkeypatch, 2))
    from kdstudio import launch
    monkeypatch.setattr(launch, "local_command", lambda *a, **k: [sys.executable, "-c", "import sys; sys.exit(3)"])
    _click(window, qtbot, window.run.start_act)
    qtbot.waitUntil(lambda: not window.run.running, timeout=60_000)
    message = window.run.last_error[0]
    assert message.startswith("The 2 training processes ended unexpectedly (exit code 3); see torchrun.log")
    assert "ended unexpectedly" in window.train.banner.label.text() and window.train.bar.format() == "failed"


def test_a_sweep_on_two_processes_is_refused_in_one_sentence(window, qtbot, monkeypatch):
    _project(window, tiny_config(device="cpu", run__seeds=[1, 2]))
    _pick_two(qtbot, _gpus(window, monkeypatch, 2))
    _click(window, qtbot, window.run.start_act)
    assert not window.run.running
    assert window.run.last_error[0].startswith("A sweep (run.seeds or run.sweep) runs in one process")


def test_the_windows_trusted_files_reach_the_processes_as_trust_flags(tmp_path):
    from kdstudio.core import trust
    from kdstudio.gui.run_torchrun import trusted_now
    from kdstudio.launch import local_command
    arch = tmp_path / "net.py"
    arch.write_text("def build(n): pass\n")
    trust.grant(arch)
    [path] = trusted_now()
    cmd = local_command(str(tmp_path / "c.toml"), str(tmp_path / "run"), 2, trust=[path])
    assert cmd[cmd.index("--nproc-per-node") + 1] == "2" and "--standalone" in cmd
    tail = cmd[cmd.index("kdstudio"):]
    assert tail[:2] == ["kdstudio", "run"] and tail[tail.index("--trust") + 1] == path and "--nproc" not in tail
    arch.write_text("import os  # changed after it was trusted\n")
    assert trusted_now() == []  # a changed file is not handed on: the run asks about it as the CLI would


def test_a_sentence_the_processes_printed_is_the_message(tmp_path):
    from kdstudio.gui.run_torchrun import said_error
    log = tmp_path / "torchrun.log"
    assert said_error(log) is None
    log.write_text("W1202 noise\nkdstudio: error: Rank 1 of this distributed run lost the other processes (x).\n"
                   "[rank0]: kdstudio: error: 'x' already holds a run; choose another --out.\n"
                   "Traceback (most recent call last):\n  ChildFailedError\n")
    assert said_error(log) == "'x' already holds a run; choose another --out."


def test_a_pause_file_pauses_the_run_that_writes_the_folder(tmp_path):
    from kdstudio.core.store.pause_file import FolderControl, request_pause
    control = FolderControl(tmp_path, poll_s=0)
    assert not control.paused
    request_pause(tmp_path, True)  # what the window does; or `touch RUN/pause` at a shell
    assert control.paused and (tmp_path / "pause").exists()
    request_pause(tmp_path, False)
    assert not control.paused
    request_pause(tmp_path, True)
    control.stop()
    assert not control.paused and control.stop_requested  # a stop is never held up by the file
    control.wait_if_paused()  # returns at once
