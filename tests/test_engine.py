"""The pipeline end to end on digits: run folder, summary, checkpoints and resume, stop, bad input."""

import json
import math

import pytest
import torch

from kdstudio.core import config, events, models, trust
from kdstudio.core.pipeline import engine
from kdstudio.core.errors import KDError, NumericalError
from kdstudio.core.store.files import read_metrics
from kdstudio.core.train.loop import StageRunner, StageSpec
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    seen = []
    summary = engine.run(tiny_config(), out, on_event=seen.append)
    return out, summary, seen


def test_run_folder_has_every_file_and_summary_key(finished_run):
    out, summary, _ = finished_run
    for name in ("config.toml", "metrics.jsonl", "summary.json", "log.txt"):
        assert (out / name).is_file(), name
    for stage in ("teacher", "distill", "baseline"):
        assert (out / "checkpoints" / f"{stage}.pt").is_file()
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["status"] == "completed" and on_disk == json.loads(json.dumps(summary))
    for key in ("status", "device", "teacher", "student", "baseline", "distill", "exports"):
        assert key in on_disk
    for who in ("teacher", "student", "baseline"):
        assert 0.0 <= on_disk[who]["accuracy"] <= 1.0
    assert on_disk["teacher"]["params"] > on_disk["student"]["params"] > 0
    assert set(on_disk["distill"]) >= {"epochs", "samples_per_s", "wall_s"}
    assert on_disk["distill"]["epochs"] == 2 and on_disk["distill"]["samples_per_s"] > 0
    formats = {e["format"] for e in on_disk["exports"]}
    assert formats == {"torchscript", "state_dict"}
    for e in on_disk["exports"]:
        assert e["bytes"] > 0 and e["max_abs_diff"] <= 1e-5
    # the resolved config reloads to the same settings
    assert config.load(out / "config.toml").to_dict() == tiny_config().to_dict()


def test_metrics_hold_every_loss_term_per_stage(finished_run):
    out, _, _ = finished_run
    records = read_metrics(out / "metrics.jsonl")
    steps = [r for r in records if r["kind"] == "step" and r["stage"] == "distill"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert steps and {"kd", "ce", "total", "teacher_ce", "lr", "samples_per_s"} <= set(steps[0])
    assert [r["epoch"] for r in epochs if r["stage"] == "distill"] == [1, 2]
    assert all(math.isfinite(r["total"]) for r in steps)


def test_metrics_end_with_what_evaluate_and_export_cost(finished_run):
    """The lines a later run's ETA reads (gui/stage_costs.py): seconds, models, samples, seconds per format."""
    from kdstudio.gui import stage_costs
    out, summary, seen = finished_run
    lines = {r["stage"]: r for r in stage_costs._timing_lines(out / "metrics.jsonl")}
    evaluate = lines["evaluate"]
    assert evaluate["models"] == 3 and evaluate["samples"] > 0 and evaluate["wall_s"] > 0
    assert set(evaluate) <= {"kind", "stage", "time", "wall_s", "models", "samples", "format_seconds"}  # no table
    assert sorted(lines["export"]["format_seconds"]) == sorted(tiny_config().export.formats)
    [plan] = [e.data["plan"] for e in seen if e.kind == events.RUN_STARTED]
    stages = {s["name"]: s for s in plan["runs"][0]["stages"]}
    assert stages["evaluate"]["samples"] == evaluate["samples"]


def test_events_follow_the_pipeline_order(finished_run):
    _, _, seen = finished_run
    started = [e.stage for e in seen if e.kind == events.STAGE_STARTED]
    assert started == ["teacher", "distill", "baseline", "evaluate", "export"]
    assert seen[0].kind == events.RUN_STARTED and seen[-1].kind == events.RUN_FINISHED


def test_exported_torchscript_matches_the_state_dict_student(finished_run):
    out, _, _ = finished_run
    arch = json.loads((out / "exports" / "student.arch.json").read_text())
    student = models.build(arch["arch"], arch["num_classes"], tuple(arch["input_shape"]), arch["width"],
                           arch["depth"])
    student.load_state_dict(torch.load(out / "exports" / "student.state_dict.pt", weights_only=True))
    scripted = torch.jit.load(str(out / "exports" / "student.torchscript.pt"))
    x = torch.randn(5, *arch["input_shape"])
    assert torch.allclose(student.eval()(x), scripted(x), atol=1e-5)


def test_teacher_parameters_unchanged_by_distillation():
    torch.manual_seed(0)
    teacher = models.freeze(models.build("mlp", 3, (4,), 8, 1))
    before = [p.clone() for p in teacher.parameters()]
    student = models.build("mlp", 3, (4,), 4, 1)
    from kdstudio.core import losses
    spec = StageSpec("distill", student, losses.create("kd"), epochs=2, lr=0.1, batch_size=8, teacher=teacher,
                     cache_teacher=False)
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    runner = StageRunner(spec, x=x, y=y, x_val=x, y_val=y, device=torch.device("cpu"), amp_dtype=None,
                         emit=lambda *a, **k: None, control=events.RunControl(),
                         checkpoint_path=_tmp_ckpt(), seed=0)
    student_before = [p.clone() for p in student.parameters()]
    runner.run()
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
    assert all(p.grad is None for p in teacher.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(student_before, student.parameters()))


def _tmp_ckpt():
    import tempfile
    from pathlib import Path
    return Path(tempfile.mkdtemp()) / "ckpt.pt"


def test_cached_teacher_gives_the_same_losses_as_uncached(tmp_path):
    """The teacher-output cache is an optimisation only: the same loss terms in every epoch."""
    def distill_steps(cache: bool):
        torch.manual_seed(0)
        teacher = models.freeze(models.build("mlp", 3, (6,), 16, 1))
        student = models.build("mlp", 3, (6,), 4, 1)
        from kdstudio.core import losses
        spec = StageSpec("distill", student, losses.create("kd"), epochs=2, lr=0.05, batch_size=10,
                         teacher=teacher, cache_teacher=cache, log_every=1)
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(50, 6, generator=g), torch.randint(0, 3, (50,), generator=g)
        seen = []
        StageRunner(spec, x=x, y=y, x_val=x, y_val=y, device=torch.device("cpu"), amp_dtype=None,
                    emit=lambda kind, stage, **d: seen.append(d) if kind == events.EPOCH else None,
                    control=events.RunControl(), checkpoint_path=tmp_path / f"c{cache}.pt", seed=3).run()
        return [(d["terms"]["kd"], d["terms"]["ce"]) for d in seen]

    cached, uncached = distill_steps(True), distill_steps(False)
    assert len(cached) == len(uncached) > 0
    for (a, b), (c, d) in zip(cached, uncached):
        assert a == pytest.approx(c, rel=1e-5) and b == pytest.approx(d, rel=1e-5)


def _final_distill_weights(out):
    return torch.load(out / "checkpoints" / "distill.pt", weights_only=False)


@pytest.mark.parametrize("stop_on", ["epoch", "step"])
def test_stop_then_resume_equals_an_uninterrupted_run(tmp_path, stop_on):
    cfg = tiny_config(**{"distill.epochs": 3, "baseline.enabled": False, "export.formats": []})
    engine.run(cfg, tmp_path / "full")
    full = _final_distill_weights(tmp_path / "full")

    control = events.RunControl()
    distill_epochs = []

    def stop_early(e):
        if e.stage == "distill" and e.kind == events.EPOCH:
            distill_epochs.append(e.data["epoch"])
        if e.stage == "distill" and ((stop_on == "epoch" and e.kind == events.EPOCH) or
                                     (stop_on == "step" and e.kind == events.STEP and e.data["epoch"] == 2)):
            control.stop()

    summary = engine.run(cfg, tmp_path / "part", on_event=stop_early, control=control)
    assert summary["status"] == "stopped"
    first_started = summary["started"]
    saved = _final_distill_weights(tmp_path / "part")
    assert not saved["complete"]
    resumed_epochs = []
    summary = engine.run(None, tmp_path / "part", resume=True,
                         on_event=lambda e: resumed_epochs.append(e.data["epoch"])
                         if e.stage == "distill" and e.kind == events.EPOCH else None)
    assert summary["status"] == "completed"
    assert summary["started"] == first_started <= summary["resumed"]  # the run keeps its first start time
    assert resumed_epochs[0] == distill_epochs[-1] + 1  # continues at the next epoch
    final = _final_distill_weights(tmp_path / "part")
    for k in full["model"]:
        assert torch.allclose(full["model"][k], final["model"][k], atol=1e-6), k
    # identical optimizer state: same step count and moments as the uninterrupted run
    for sa, sb in zip(full["optimizer"]["state"].values(), final["optimizer"]["state"].values()):
        assert torch.equal(sa["step"], sb["step"])
        assert torch.allclose(sa["exp_avg"], sb["exp_avg"], atol=1e-6)
    # the speed after a resume covers only the epochs run since, and says so
    assert summary["distill"]["samples_per_s"] > 0
    assert 0 < summary["distill"]["timed_epochs"] < 3


def test_stages_finished_before_a_resume_keep_their_timings(tmp_path):
    cfg = tiny_config(**{"distill.epochs": 2, "export.formats": []})
    control = events.RunControl()

    def stop_in_baseline(e):
        if e.stage == "baseline" and e.kind == events.EPOCH:
            control.stop()

    first = engine.run(cfg, tmp_path / "run", on_event=stop_in_baseline, control=control)
    assert first["status"] == "stopped" and first["distill"]["samples_per_s"] > 0
    again = engine.run(None, tmp_path / "run", resume=True)
    assert again["status"] == "completed"
    for key in ("samples_per_s", "wall_s", "teacher_cache", "timed_epochs"):
        assert again["distill"][key] == first["distill"][key], key
    assert again["distill"]["timed_epochs"] == 2


def test_a_stage_begun_after_a_resume_draws_the_same_dropout_masks(tmp_path):
    net = tmp_path / "drop_net.py"
    net.write_text("import torch\n"
                   "def make(num_classes, input_shape):\n"
                   "    n = int(torch.tensor(input_shape).prod())\n"
                   "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(n, 32), torch.nn.ReLU(),\n"
                   "                               torch.nn.Dropout(0.5), torch.nn.Linear(32, num_classes))\n")
    trust.grant(net)  # a file this test wrote: trusted (tests/test_trust.py covers the refusal)
    cfg = tiny_config(**{"student.arch": f"{net}:make", "export.formats": []})
    engine.run(cfg.copy(), tmp_path / "full")
    control = events.RunControl()

    def stop_when_distill_ends(e):
        if e.stage == "distill" and e.kind == events.STAGE_FINISHED:
            control.stop()

    assert engine.run(cfg.copy(), tmp_path / "part", on_event=stop_when_distill_ends,
                      control=control)["status"] == "stopped"
    # the baseline's stop check wrote a start-of-stage checkpoint; without it (a stop or Ctrl-C between the
    # stages) the baseline starts fresh on resume, which is the case under test
    (tmp_path / "part" / "checkpoints" / "baseline.pt").unlink(missing_ok=True)
    assert engine.run(None, tmp_path / "part", resume=True)["status"] == "completed"
    full = torch.load(tmp_path / "full" / "checkpoints" / "baseline.pt", weights_only=False)["model"]
    part = torch.load(tmp_path / "part" / "checkpoints" / "baseline.pt", weights_only=False)["model"]
    for k in full:
        assert torch.allclose(full[k], part[k], atol=1e-6), k


def test_resume_of_a_folder_without_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(KDError, match="holds no run"):
        engine.run(None, tmp_path, resume=True)


def test_cuda_without_cuda_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(KDError, match="no CUDA GPU"):
        engine.run(tiny_config(device="cuda"), tmp_path)


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(KDError, match="Cannot write to the output folder"):
        engine.run(tiny_config(), blocker / "run")


def test_nan_loss_stops_and_names_stage_and_epoch(tmp_path):
    cfg = tiny_config(**{"teacher.lr": 1e30, "distill.optimizer": "sgd"})
    with pytest.raises(NumericalError) as e:
        engine.run(cfg, tmp_path)
    msg = str(e.value)
    assert "teacher" in msg and "epoch 1" in msg and "learning rate" in msg
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"


def test_a_new_run_never_reuses_an_existing_run_folder(finished_run):
    out, _, _ = finished_run
    with pytest.raises(KDError, match="already holds a run"):
        engine.run(tiny_config(), out)


def test_written_files_get_the_usual_permissions(finished_run):
    import os
    out, _, _ = finished_run
    mask = os.umask(0)
    os.umask(mask)
    for name in ("config.toml", "summary.json", "exports/student.state_dict.pt", "checkpoints/distill.pt"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_log_txt_reads_like_the_window_log(tmp_path):
    engine.run(tiny_config(**{"export.formats": []}), tmp_path / "run")
    text = (tmp_path / "run" / "log.txt").read_text(encoding="utf-8")
    assert "[teacher] epoch 1/2: val acc " in text and "[distill] epoch 2/2: val acc " in text
    teacher_epoch = next(line for line in text.splitlines() if "[teacher] epoch 1/2" in line)
    assert " ce " in teacher_epoch and "total" not in teacher_epoch  # plain CE: total would repeat ce
    checkpoints = [line for line in text.splitlines() if "checkpoint written" in line]
    assert checkpoints and all("(stage complete)" in line for line in checkpoints)  # not one per epoch
    assert "[-]" not in text and "[run]" in text
