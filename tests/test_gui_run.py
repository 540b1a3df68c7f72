"""Runs through the window: live plots, history, evaluate, export, pause/resume/stop, errors, closing."""

import math
import time
import warnings
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QMessageBox, QToolButton  # noqa: E402

from kdstudio.core.store.files import read_json, read_metrics  # noqa: E402
from kdstudio.gui.pages.export_table import CHECK  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402

RUN_TIMEOUT_MS = 120_000


def click(window, qtbot, action) -> None:
    """Click the Train page's button for one of the window's run actions (Start, Pause, Resume, Stop)."""
    window.show_page("Train")
    [button] = [b for b in window.train.controls.findChildren(QToolButton) if b.defaultAction() is action]
    assert button.isEnabled(), f"{action.text().strip()} is disabled"
    qtbot.mouseClick(button, Qt.LeftButton)


def start(window, qtbot) -> None:
    """Press Start on the Train page; the run's thread is going afterwards."""
    click(window, qtbot, window.run.start_act)
    assert window.run.running


def _run_to_end(window, qtbot):
    """Start a run and wait until its thread has ended; fail with the run's own message if it failed."""
    start(window, qtbot)
    qtbot.waitUntil(lambda: not window.run.running, timeout=RUN_TIMEOUT_MS)
    assert window.run.last_error is None, window.run.last_error[0]
    return window.run.last_summary


def _project(window, cfg, name="Tiny"):
    window.panel.new_project(name)
    window.model.replace(cfg)
    window.model.save_now()
    return window.model.project


def test_short_distillation_runs_to_completion_with_live_plots(window, qtbot):
    window.hub.load_catalog()  # as the app does right after the window appears: torch loads before any run
    qtbot.waitUntil(lambda: window.hub.catalog is not None, timeout=RUN_TIMEOUT_MS)
    project = _project(window, tiny_config())
    summary = _run_to_end(window, qtbot)
    assert summary["status"] == "completed"
    run_dir = window.run.run_dir
    assert run_dir.parent == project.runs_dir and read_json(run_dir / "summary.json")["status"] == "completed"

    # the live series got every loss term the method reported, and the plots hold that data
    s = window.train.live_series
    for term in ("kd", "ce", "total", "teacher_ce"):
        assert len(s.step[("distill", term)]) >= 2, term
    assert len(s.val_acc["distill"]) == 2 and len(s.val_acc["baseline"]) == 2
    assert s.teacher_reference() is not None
    assert window.train.plots.curve_count() >= 8
    item = window.train.plots._items[("loss", "distill", "total", "step")]
    assert len(item.xData) == len(s.step[("distill", "total")])
    assert window.train.plots._ref_line is not None
    assert window.train.bar.value() == 1000 and window.train.bar.format() == "completed"

    # the live points are exactly what metrics.jsonl holds
    logged = [r["total"] for r in read_metrics(run_dir / "metrics.jsonl")
              if r["kind"] == "step" and r["stage"] == "distill"]
    assert s.step[("distill", "total")].y == pytest.approx(logged)

    # history, evaluate and export pages know the run
    assert [r.status for r in window.train.history.runs] == ["completed"]
    assert window.train.history.tree.topLevelItem(0).text(1) == "completed"
    ev = window.pages["Evaluate"]
    assert ev.table.rowCount() == 3
    assert ev.table.item(1, 1).text() == f"{summary['student']['accuracy'] * 100:.2f}%"
    assert ev.smaller.value.text() == f"{summary['compression']['params_ratio']:.1f}×"
    assert window.pages["Export"].selected_run().path == run_dir

    # the log pane has the engine's messages, and the stall probe measured the run
    text = window.train.live_log.toPlainText()
    assert "── distill ──" in text and "Test accuracy" in text and "Run completed." in text
    stall = window.run.last_stall
    print(f"stall during the run: {window.run.probe.describe()}")
    assert stall["n"] > 10 and math.isfinite(stall["p99_ms"])  # its size is measured by the demo, not asserted
    assert "event-loop stall" not in text  # a developer figure, not a message for users
    assert "CPU thread" in text and "one is left for the window" in text

    # save plots as PNG
    png = run_dir / "plots.png"
    assert window.train.plots.save_png(str(png)) and png.stat().st_size > 5000


def test_history_selection_shows_curves_and_overlays(window, qtbot):
    _project(window, tiny_config(**{"distill.epochs": 1, "baseline.enabled": False}))
    for _ in range(2):
        _run_to_end(window, qtbot)
        time.sleep(1.1)  # run folders are named by the second
    hist = window.train.history
    assert len(hist.runs) == 2
    hist.select_paths([hist.runs[1].path])
    assert len(window.train.plots.series) == 1 and window.train.plots.curve_count() > 0
    assert window.train.logs.currentWidget() is window.train.past_log
    hist.select_paths([r.path for r in hist.runs])
    assert len(window.train.plots.series) == 2
    keys = window.train.plots._items.keys()
    assert ("loss", 0, "total", "step") in keys and ("loss", 1, "total", "step") in keys


def test_pause_resume_stop_and_stop_leaves_a_checkpoint(window, qtbot):
    _project(window, tiny_config(**{"teacher.epochs": 400, "distill.log_every": 1}))
    train, run = window.train, window.run
    start(window, qtbot)
    qtbot.waitUntil(lambda: train.live_series.step.get(("teacher", "ce")) is not None
                    and len(train.live_series.step[("teacher", "ce")]) >= 2, timeout=RUN_TIMEOUT_MS)
    click(window, qtbot, run.pause_act)
    assert run.state == "paused" and train.resume_act.isEnabled()
    qtbot.wait(600)  # the step in flight finishes, then nothing moves
    n = len(train.live_series.step[("teacher", "ce")])
    qtbot.wait(800)
    assert len(train.live_series.step[("teacher", "ce")]) == n
    assert "Paused." in train.live_log.toPlainText()
    click(window, qtbot, run.resume_act)
    assert run.state == "running"
    qtbot.waitUntil(lambda: len(train.live_series.step[("teacher", "ce")]) > n, timeout=RUN_TIMEOUT_MS)
    with qtbot.waitSignal(run.finished, timeout=RUN_TIMEOUT_MS) as done:
        click(window, qtbot, run.stop_act)
    assert done.args[0]["status"] == "stopped"
    run_dir = run.run_dir
    assert (run_dir / "checkpoints" / "teacher.pt").is_file()
    assert train.history.runs[0].status == "stopped"
    train.history.select_paths([run_dir])
    assert train.history.resume_btn.isEnabled()
    assert train.start_act.isEnabled()
    # Resume run continues from the checkpoint in the same folder
    train.history.resume_btn.click()
    assert run.running and run.run_dir == run_dir
    qtbot.waitUntil(lambda: "Resumed teacher at epoch" in train.live_log.toPlainText(), timeout=RUN_TIMEOUT_MS)
    with qtbot.waitSignal(run.finished, timeout=RUN_TIMEOUT_MS) as done:
        window.run.stop_act.trigger()  # the shortcut's action, as the Run menu and Ctrl+. trigger it
    assert done.args[0]["status"] == "stopped" and len(train.history.runs) == 1


def test_export_writes_files_that_load_and_match(window, qtbot, tmp_path, monkeypatch):
    import torch

    from kdstudio.core import models
    _project(window, tiny_config(**{"baseline.enabled": False, "distill.epochs": 1}))
    _run_to_end(window, qtbot)
    page = window.pages["Export"]
    assert page.selected_run() is not None and page.table.rowCount() == 2  # what the run itself exported
    out = tmp_path / "shipped"
    page.folder.setText(str(out))
    task = page.export()
    with qtbot.waitSignal(task.finished, timeout=RUN_TIMEOUT_MS):
        pass
    assert task.error is None, task.error
    files = {Path(r["path"]).name: r for r in page.results}
    assert set(files) >= {"student.torchscript.pt", "student.state_dict.pt"}
    for r in page.results:
        assert r["max_abs_diff"] <= 1e-4 and r["bytes"] == Path(r["path"]).stat().st_size
    assert all(page.table.item(r, CHECK).text() == "✓ matches" for r in range(page.table.rowCount()))
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.No)
    assert page.export() is None and "already holds" in asked[0]  # never overwrites without asking
    # the state_dict loads into a freshly built student and reproduces the run's checkpoint exactly
    run_dir = window.run.run_dir
    ckpt = torch.load(run_dir / "checkpoints" / "distill.pt", weights_only=False)["model"]
    m = models.build("mlp", 10, (1, 8, 8), 16, 1)
    m.load_state_dict(torch.load(out / "student.state_dict.pt", weights_only=True))
    for k, v in m.state_dict().items():
        assert torch.equal(v, ckpt[k])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ts = torch.jit.load(str(out / "student.torchscript.pt"))
    x = torch.randn(4, 1, 8, 8)
    assert torch.allclose(ts(x), m.eval()(x), atol=1e-5)


def test_missing_data_file_disables_start_before_any_run(window, qtbot):
    _project(window, tiny_config(**{"data.source": "csv", "data.path": "/nonexistent/data.csv"}))
    assert not window.train.start_act.isEnabled()
    assert window.run.start() is False and not window.run.running


def test_worker_error_is_shown_and_the_window_stays_usable(window, qtbot, monkeypatch, tmp_path):
    bad = tmp_path / "data.csv"
    bad.write_text("a,b\n1,2\n3,4\n")  # exists, but has no label column: the worker finds that out
    _project(window, tiny_config(**{"data.source": "csv", "data.path": str(bad)}))
    with qtbot.waitSignal(window.run.failed, timeout=RUN_TIMEOUT_MS) as failed:
        start(window, qtbot)
    message = failed.args[0]
    assert "data.csv" in message
    assert "Run failed:" in window.train.banner.text() and "data.csv" in window.train.banner.text()
    assert window.train.bar.format() == "failed" and not window.run.running
    assert window.train.start_act.isEnabled() and window.isVisible()

    # an unexpected exception (a bug) reaches the window too, with its details
    import kdstudio.core.pipeline.engine as engine

    def boom(*a, **k):
        raise RuntimeError("boom")
    monkeypatch.setattr(engine, "run", boom)
    with qtbot.waitSignal(window.run.failed, timeout=RUN_TIMEOUT_MS) as failed:
        start(window, qtbot)
    assert "RuntimeError('boom')" in failed.args[0] and "Traceback" in failed.args[1]
    box = window.train.show_error_details()
    assert "boom" in box.detailedText()
    box.close()
    window.pages["Teacher"].form.fields["teacher.epochs"].editor.setText("3")  # still editable
    assert window.isVisible()


def test_close_during_a_run_asks_then_stops_cleanly(window, qtbot, monkeypatch):
    _project(window, tiny_config(**{"teacher.epochs": 400}))
    train = window.train
    start(window, qtbot)
    qtbot.waitUntil(lambda: ("teacher", "ce") in train.live_series.step, timeout=RUN_TIMEOUT_MS)
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[1]) or QMessageBox.No)
    window.close()
    assert asked == ["A run is in progress"] and window.isVisible() and window.run.running
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[1]) or QMessageBox.Yes)
    window.close()
    assert window.isVisible()  # waits for the clean stop first
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=RUN_TIMEOUT_MS)
    run_dir = window.run.run_dir
    assert read_json(run_dir / "summary.json")["status"] == "stopped"
    assert (run_dir / "checkpoints" / "teacher.pt").is_file()


def test_seeds_sweep_runs_each_seed_and_shows_the_table(window, qtbot):
    _project(window, tiny_config(**{"distill.epochs": 1, "baseline.enabled": False, "run.seeds": [0, 1]}))
    summary = _run_to_end(window, qtbot)
    assert summary["status"] == "completed" and len(summary["runs"]) == 2 and len(summary["rows"]) == 1
    assert "run 2/2" in window.train.live_log.toPlainText() or "Run 2/2" in window.train.live_log.toPlainText()
    [run] = window.train.history.runs
    assert run.is_sweep and run.status == "completed" and len(run.sub_runs()) == 2
    assert window.train.history.tree.topLevelItem(0).text(3) != "–"  # best point's student accuracy
    window.train.history.select_paths([run.path])
    assert [s.label for s in window.train.plots.series] == ["seed-0", "seed-1"] or \
        len(window.train.plots.series) == 2
    # a sweep folder has no log of its own: the log pane shows each member's, under its name
    log = window.train.past_log.toPlainText()
    assert window.train.logs.currentWidget() is window.train.past_log and "no log" not in log
    assert all(f"{p.relative_to(run.path)} ────" in log for p in run.sub_runs())
    assert "Run 2/2 of the sweep" in log
    ev = window.pages["Evaluate"]
    assert ev.table.rowCount() == 1 and ev.table.item(0, ev.table.columnCount() - 1).text() == "best"
    # the headline cards say what a sweep shows, not the single-run captions
    assert [c.caption.text() for c in (ev.kept, ev.gain, ev.smaller, ev.faster)][::3] == ["Best point", "Runs"]
    assert ev.faster.value.text() == "2"


def test_demo_mode_runs_the_demo_project_saves_screenshots_and_quits(qtbot, monkeypatch, tmp_path):
    """`kdstudio gui --demo --autorun --quit-when-done --screenshot PATH` (with a tiny demo config)."""
    import argparse
    import sys as _sys

    from kdstudio.gui import app as gui_app
    from kdstudio.gui import project_panel
    monkeypatch.setitem(project_panel.TEMPLATES, "Digits demo", lambda: tiny_config(**{"distill.epochs": 1}))
    monkeypatch.setattr(_sys, "excepthook", _sys.excepthook)  # main() installs its own; restore it afterwards
    shots = tmp_path / "shots"
    args = argparse.Namespace(demo=True, autorun=True, quit_when_done=True, screenshot=str(shots / "{page}.png"),
                              debug=False)
    assert gui_app.main(args) == 0
    from kdstudio.core.store.projects import ProjectStore
    project = ProjectStore().get("Digits demo")
    assert [r.status for r in project.runs()] == ["completed"]
    names = sorted(p.name for p in shots.glob("*.png"))
    assert names == sorted(f"{p.lower()}.png" for p in ("Data", "Teacher", "Student", "Method", "Train",
                                                         "Evaluate", "Export"))
    assert all(p.stat().st_size > 10_000 for p in shots.glob("*.png"))
