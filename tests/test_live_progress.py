"""The Train page's progress text before and after a stage's first step report (Qt-free)."""

from kdstudio.core import events as ev
from kdstudio.core.pipeline.plan import RunPlan, plan_run
from kdstudio.gui.pages.live import LiveRun
from tests.helpers import tiny_config


def _started(cfg, out, n_train=40):
    """The RUN_STARTED event the engine sends for cfg: its plan is what the progress bar follows."""
    plan = RunPlan([plan_run(cfg, n_train)]).to_dict()
    return ev.Event(ev.RUN_STARTED, None, {"run_dir": str(out), "device": "cpu", "resumed": False, "plan": plan})


def test_progress_before_the_first_step_says_epoch_1_and_measuring(tmp_path):
    cfg = tiny_config(**{"teacher.epochs": 3})
    live = LiveRun(cfg, tmp_path / "run")
    live.ingest([_started(cfg, tmp_path / "run"), ev.Event(ev.STAGE_STARTED, "teacher", {})])
    _, text, detail = live.bar(paused=False)
    assert "teacher · epoch 1/3" in text and "0/0" not in text
    assert detail == "measuring the speed for an ETA…"
    steps = [ev.Event(ev.STEP, "teacher", {"epoch": 1, "epochs": 3, "step": k, "steps": 4, "global_step": k,
                                           "lr": 0.01, "samples_per_s": 100.0, "terms": {"total": 1.0}},
                      time=100.0 + k) for k in (1, 2)]
    live.ingest(steps)
    _, text, detail = live.bar(paused=False)
    # the teacher's speed says nothing about the student's: this stage's time, not a made-up total
    assert "teacher · epoch 1/3" in text and detail.startswith("this stage 0:10 left; the whole run's ETA once")
    live.ingest([ev.Event(ev.STAGE_STARTED, "distill", {})] + [
        ev.Event(ev.STEP, "distill", {"epoch": 1, "epochs": 2, "step": k, "steps": 4, "global_step": k, "lr": 0.01,
                                      "samples_per_s": 100.0, "terms": {"total": 1.0}}, time=200.0 + k / 10)
        for k in (1, 2)])
    _, _, detail = live.bar(paused=False)
    assert detail.startswith("ETA 0:01 (this stage 0:01)")  # the baseline trains the same student: its speed


def test_a_pause_is_not_counted_as_training_time(tmp_path):
    cfg = tiny_config(**{"teacher.epochs": 3})
    live = LiveRun(cfg, tmp_path / "run")
    step = lambda k, t: ev.Event(ev.STEP, "teacher", {"epoch": 1, "epochs": 3, "step": k, "steps": 4,  # noqa: E731
                                                      "global_step": k, "lr": 0.01, "samples_per_s": 4.0,
                                                      "terms": {}}, time=t)
    live.ingest([_started(cfg, tmp_path / "run"), ev.Event(ev.STAGE_STARTED, "teacher", {}), step(1, 0.0),
                 step(2, 1.0)])
    before = live.progress.eta()[0]
    live.progress.hold()  # paused for 600 s, then resumed
    live.ingest([step(3, 601.0), step(4, 602.0)])
    assert live.progress.eta()[0] == before - 2  # one step a second, as before the pause


def test_evaluate_and_export_fill_the_last_of_the_bar(tmp_path):
    cfg = tiny_config(**{"teacher.epochs": 1, "distill.epochs": 1, "baseline.enabled": False})
    live = LiveRun(cfg, tmp_path / "run")
    live.ingest([_started(cfg, tmp_path / "run")])
    p = live.progress
    assert p.after == ["evaluate", "export"]
    for stage in ("teacher", "distill"):
        live.ingest([ev.Event(ev.STAGE_STARTED, stage, {}), ev.Event(ev.STAGE_FINISHED, stage, {})])
    assert p.fraction() == 0.95
    live.ingest([ev.Event(ev.STAGE_STARTED, "evaluate", {})])
    assert 0.95 < p.fraction() < 1.0
    live.ingest([ev.Event(ev.STAGE_FINISHED, "evaluate", {}), ev.Event(ev.STAGE_STARTED, "export", {}),
                 ev.Event(ev.STAGE_FINISHED, "export", {})])
    assert p.fraction() == 1.0


def test_a_teacher_from_a_file_trains_no_epochs_so_the_eta_counts_none(tmp_path):
    """The progress follows the engine's plan: a loaded teacher is not 'teacher.epochs' of training."""
    cfg = tiny_config(**{"teacher.source": "file", "teacher.path": str(tmp_path / "t.pt"), "teacher.epochs": 50,
                         "distill.epochs": 2})
    plan = plan_run(cfg, 40)
    assert [(s.name, s.epochs) for s in plan.stages][:3] == [("teacher", 0), ("distill", 2), ("baseline", 2)]
    live = LiveRun(cfg, tmp_path / "run")
    live.ingest([_started(cfg, tmp_path / "run"), ev.Event(ev.STAGE_STARTED, "distill", {})])
    assert set(live.progress.stage_epochs) == {"distill", "baseline"}
    steps = plan.stages[1].steps
    live.ingest([ev.Event(ev.STEP, "distill", {"epoch": 2, "epochs": 2, "step": steps, "steps": steps,
                                               "global_step": 2 * steps, "lr": 0.01, "samples_per_s": 10.0,
                                               "terms": {"total": 0.5}})])
    # distill done, baseline to go, evaluate and export after: no teacher epochs in the total
    assert live.progress.fraction() == 0.5 * 0.95


def test_a_sweep_announces_every_member_and_each_gets_fresh_curves(tmp_path):
    cfg = tiny_config(**{"run.seeds": [0, 1], "distill.epochs": 1, "teacher.epochs": 1})
    out = tmp_path / "sweep"
    members = [plan_run(cfg, 40), plan_run(cfg, 40)]
    plan = RunPlan(members, sweep=True).to_dict()
    live = LiveRun(cfg, out)
    lines = live.ingest([ev.Event(ev.RUN_STARTED, None, {"run_dir": str(out), "device": None, "resumed": False,
                                                         "plan": plan})])
    assert live.sweep_total == 2 and "2 runs" in lines[0][0]
    for index in (1, 2):
        live.ingest([ev.Event(ev.MEMBER_STARTED, None, {"index": index, "total": 2, "point": {}, "seed": index - 1,
                                                        "run_dir": str(out / "base" / f"seed-{index - 1}"),
                                                        "stages": plan["runs"][index - 1]["stages"]})])
        assert live.sub_index == index and live.series.label.endswith(f"seed-{index - 1}") or index == 1
        value, text, _ = live.bar(paused=False)
        assert text.startswith(f"run {index}/2")
