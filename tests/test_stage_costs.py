"""Evaluate and export in the progress bar and the ETA by what they cost (Qt-free): measured in the project's earlier
runs (the timing lines at the end of their metrics.jsonl), else evaluate's from the run's own training speed."""

import json
import re

import pytest

from kdstudio.gui import stage_costs
from kdstudio.gui.series import AFTER_SHARE, Progress

PLAN = [{"name": "teacher", "epochs": 1, "steps": 10}, {"name": "distill", "epochs": 1, "steps": 10},
        {"name": "evaluate", "epochs": 0, "steps": 0, "samples": 300},
        {"name": "export", "epochs": 0, "steps": 0, "formats": ["onnx", "torchscript"]}]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _earlier_run(runs, name, evaluate_s, models, formats):
    folder = runs / name
    folder.mkdir(parents=True)
    lines = [{"kind": "step", "stage": "distill", "time": 1.0, "global_step": k} for k in range(400)]  # > the tail
    lines += [{"kind": "stage_finished", "stage": "evaluate", "time": 2.0, "wall_s": evaluate_s, "models": models,
               "samples": 300},
              {"kind": "stage_finished", "stage": "export", "time": 3.0, "wall_s": sum(formats.values()),
               "format_seconds": formats}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return folder


def _train(p, clock, stage, seconds_per_step=0.1, steps=10, sps=1000.0):
    p.stage_started(stage, when=clock.now)
    for k in range(1, steps + 1):
        clock.now += seconds_per_step
        p.step({"epoch": 1, "epochs": 1, "step": k, "steps": steps, "global_step": k, "samples_per_s": sps},
               stage, when=clock.now)
    p.stage_finished(stage)


def test_earlier_runs_give_evaluate_per_model_and_export_per_format(tmp_path):
    runs = tmp_path / "runs"
    _earlier_run(runs, "20260101-000001", 3.0, 3, {"onnx": 8.0, "torchscript": 0.5})
    _earlier_run(runs, "20260101-000002", 6.0, 3, {"onnx": 6.0})
    mine = _earlier_run(runs, "20260101-000003", 99.0, 1, {"onnx": 99.0})  # the run itself is left out
    (runs / "20260101-000004").mkdir()  # a run without metrics (failed early) says nothing
    past = stage_costs.past_costs(runs, exclude=mine)
    assert past.runs == 2 and past.evaluate_per_model == pytest.approx(1.5)  # median of 1.0 and 2.0 s a model
    assert past.export_per_format == {"onnx": 7.0, "torchscript": 0.5}
    assert past.evaluate(4) == pytest.approx(6.0) and past.export(["onnx", "torchscript"]) == pytest.approx(7.5)
    assert past.export(["openvino"]) is None  # never timed here: unknown, not guessed
    assert stage_costs.past_costs(tmp_path / "nowhere").runs == 0


def test_measured_costs_take_their_share_of_the_bar_and_count_in_the_eta(tmp_path):
    runs = tmp_path / "runs"
    _earlier_run(runs, "20260101-000001", 4.0, 2, {"onnx": 1.5, "torchscript": 0.5})
    clock = Clock()
    p = Progress.from_plan(PLAN, clock=clock, past=stage_costs.past_costs(runs))
    assert p.after_seconds == {"evaluate": 4.0, "export": 2.0}  # 2 models (no baseline in the plan) × 2 s
    _train(p, clock, "teacher")                    # 1 s
    p.stage_started("distill", when=clock.now)
    clock.now += 0.1
    p.step({"epoch": 1, "epochs": 1, "step": 1, "steps": 10, "global_step": 1, "samples_per_s": 1000.0}, "distill",
           when=clock.now)
    clock.now += 0.1
    p.step({"epoch": 1, "epochs": 1, "step": 2, "steps": 10, "global_step": 2, "samples_per_s": 1000.0}, "distill",
           when=clock.now)
    stage_left, total_left = p.eta()
    assert stage_left == pytest.approx(0.8) and total_left == pytest.approx(0.8 + 6.0)  # evaluate and export too
    for k in range(3, 11):
        clock.now += 0.1
        p.step({"epoch": 1, "epochs": 1, "step": k, "steps": 10, "global_step": k, "samples_per_s": 1000.0},
               "distill", when=clock.now)
    p.stage_finished("distill")
    # training took 2 s, evaluate and export are estimated at 6 s: they are 6/8 of the run, capped at half the bar
    assert p.fraction() == pytest.approx(0.5)
    p.stage_started("evaluate", when=clock.now)
    clock.now += 1.0
    assert p.eta() == (pytest.approx(3.0), pytest.approx(5.0))
    assert p.fraction() == pytest.approx(0.5 + 0.5 * 1 / 6)
    clock.now += 10.0  # longer than estimated: nothing left that is known, never below zero
    assert p.eta() == (0.0, pytest.approx(2.0))
    p.stage_finished("evaluate")
    p.stage_started("export", when=clock.now)
    clock.now += 0.5
    assert p.eta() == (pytest.approx(1.5), pytest.approx(1.5))
    p.stage_finished("export")
    assert p.fraction() == 1.0


def test_without_earlier_runs_evaluate_is_estimated_from_the_students_speed_and_export_stays_unknown():
    clock = Clock()
    plan = PLAN[:1] + [{"name": "distill", "epochs": 1, "steps": 10}, {"name": "baseline", "epochs": 1, "steps": 10}]
    p = Progress.from_plan(plan + PLAN[2:], clock=clock)
    assert p.after_estimate("evaluate") is None  # before the student has trained: unknown
    _train(p, clock, "teacher", sps=50.0)
    assert p.after_estimate("evaluate") is None  # the teacher's speed says nothing about the student's
    _train(p, clock, "distill", sps=2000.0)
    expected = 3 * (stage_costs.MODEL_OVERHEAD_S + (300 + stage_costs.LATENCY_SAMPLES) /
                    (stage_costs.FORWARD_SPEEDUP * 2000.0))
    assert p.after_estimate("evaluate") == pytest.approx(expected) and p.after_source["evaluate"] == "this run's speed"
    p.stage_started("baseline", when=clock.now)
    _, total_left = p.eta()
    assert total_left is None  # the baseline's speed is the distilled student's: not yet measured in this stage
    _train(p, clock, "baseline", sps=2000.0)
    assert p.fraction() == pytest.approx(1 - AFTER_SHARE)  # export's cost unknown: the fixed share, as before
    p.stage_started("evaluate", when=clock.now)
    assert p.eta()[0] == pytest.approx(expected)



def test_the_bar_says_what_evaluate_has_left_and_where_the_estimate_comes_from(tmp_path):
    from kdstudio.core import events as ev
    from kdstudio.gui.pages.live import LiveRun
    from tests.helpers import tiny_config
    runs = tmp_path / "runs"
    _earlier_run(runs, "20260101-000001", 30.0, 3, {"torchscript": 2.0})
    out = runs / "20260101-000002"
    live = LiveRun(tiny_config(), out)
    stages = [{"name": "distill", "epochs": 1, "steps": 4, "done": True}, {"name": "baseline", "epochs": 1,
              "steps": 4, "done": True}] + PLAN[2:3] + [{"name": "export", "formats": ["torchscript"]}]
    plan = {"sweep": False, "runs": [{"stages": stages}]}
    live.ingest([ev.Event(ev.RUN_STARTED, None, {"run_dir": str(out), "device": "cpu", "resumed": True,
                                                 "plan": plan}),
                 ev.Event(ev.STAGE_STARTED, "evaluate", {}, time=live.progress.clock() - 5)])
    _, text, detail = live.bar(paused=False)
    # 3 models (a baseline is planned) × 10 s a model, 5 s of it gone; export 2 s after it
    assert text.startswith("evaluate…") and re.match(r"measuring the models · about 0:2[45] left, ETA 0:2[67] \(",
                                                     detail), detail  # the clock runs on while the test does
    assert detail.endswith("(estimated from earlier runs)")
