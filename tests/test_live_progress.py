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
    assert "teacher · epoch 1/3" in text and detail.startswith("ETA ")


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
    assert live.progress.fraction() == 0.5  # distill done, baseline to go; no teacher epochs in the total


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
