"""Training extras as hooks of the stage loop: gradient clipping, weight EMA, the best-on-validation checkpoint;
the frozen teacher; and the plan the engine announces."""

import torch

from kdstudio.core import events, models
from kdstudio.core.models.frozen import FrozenTeacher
from kdstudio.core.outputs.artifacts import load_run
from kdstudio.core.outputs.evaluate import accuracy
from kdstudio.core.pipeline import engine
from kdstudio.core.train.hooks import BestOnValidation, GradClip, TrainHook, WeightEMA
from kdstudio.core.train.loop import CrossEntropy, StageRunner, StageSpec
from tests.helpers import tiny_config


def _runner(tmp_path, hooks, lr=0.05, epochs=2, name="c.pt"):
    torch.manual_seed(0)
    model = models.build("mlp", 3, (6,), 8, 1)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(60, 6, generator=g), torch.randint(0, 3, (60,), generator=g)
    spec = StageSpec("distill", model, CrossEntropy(), epochs=epochs, lr=lr, batch_size=10, log_every=1)
    return StageRunner(spec, x=x, y=y, x_val=x, y_val=y, device=torch.device("cpu"), amp_dtype=None,
                       emit=lambda *a, **k: None, control=events.RunControl(), checkpoint_path=tmp_path / name,
                       seed=3, hooks=hooks)


class _Recorder(TrainHook):
    name = "recorder"

    def __init__(self):
        self.calls, self.norms = [], []

    def before_step(self, runner, idx):
        self.calls.append("before")

    def after_backward(self, runner):
        grads = [p.grad for p in runner.s.model.parameters() if p.grad is not None]
        self.norms.append(float(torch.nn.utils.get_total_norm(grads)))
        self.calls.append("backward")

    def after_step(self, runner):
        self.calls.append("step")

    def epoch_end(self, runner, val_acc):
        self.calls.append("epoch")


def test_hooks_are_called_at_their_points_in_order(tmp_path):
    rec = _Recorder()
    runner = _runner(tmp_path, [rec], epochs=1)
    runner.run()
    steps = runner.steps_per_epoch
    assert rec.calls == ["before", "backward", "step"] * steps + ["epoch"]


def test_gradient_clipping_bounds_the_norm_the_optimizer_sees(tmp_path):
    rec = _Recorder()
    _runner(tmp_path, [GradClip(0.01), rec], lr=1.0, epochs=1).run()
    assert rec.norms and max(rec.norms) <= 0.01 * 1.0001
    free = _Recorder()
    _runner(tmp_path, [free], lr=1.0, epochs=1, name="d.pt").run()
    assert max(free.norms) > 0.01  # without the hook the same steps have larger gradients


def test_weight_ema_becomes_the_stage_model_and_resumes_exactly(tmp_path):
    runner = _runner(tmp_path, [], epochs=2)
    ema = WeightEMA(runner.s.model, 0.5)
    runner.hooks.append(ema)
    runner.run()
    averaged = ema.average.module.state_dict()
    assert all(torch.equal(v, averaged[k]) for k, v in runner.s.model.state_dict().items())
    # the EMA's state rides in the checkpoint, so a stage resumed from it continues the same average
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert "ema" in state["hooks"] and int(state["hooks"]["ema"]["n_averaged"]) == 2 * runner.steps_per_epoch


def test_best_checkpoint_keeps_the_epoch_with_the_best_validation_accuracy(tmp_path):
    best = BestOnValidation(tmp_path / "distill.best.pt")
    accs = []

    class Acc(TrainHook):
        def epoch_end(self, runner, val_acc):
            accs.append(val_acc)
    _runner(tmp_path, [Acc(), best], epochs=4).run()
    saved = torch.load(tmp_path / "distill.best.pt", weights_only=True)
    assert saved["val_acc"] == max(accs) and saved["epoch"] == accs.index(max(accs)) + 1


def test_evaluate_model_best_scores_and_exports_the_best_weights(tmp_path):
    cfg = tiny_config(**{"evaluate.model": "best", "distill.epochs": 3, "export.formats": ["state_dict"]})
    summary = engine.run(cfg, tmp_path / "run")
    best = torch.load(tmp_path / "run" / "checkpoints" / "distill.best.pt", weights_only=True)
    run = load_run(tmp_path / "run")
    assert all(torch.equal(v, best["model"][k]) for k, v in run.models["student"].state_dict().items())
    assert summary["student"]["accuracy"] == accuracy(run.models["student"], run.data.x_test, run.data.y_test)


def test_the_frozen_teacher_stays_in_eval_mode_and_takes_no_gradients():
    module = models.build("cnn", 10, (1, 8, 8), 8, 2)
    teacher = FrozenTeacher(module)
    module.train()  # a stage putting "every model" in train mode cannot reach the teacher's forward pass
    out = teacher(torch.randn(2, 1, 8, 8))
    assert not module.training and not out.requires_grad
    assert all(not p.requires_grad for p in teacher.parameters())
    assert FrozenTeacher(teacher).module is module


def test_run_started_carries_the_plan_and_a_sweep_announces_each_member(tmp_path):
    seen = []
    engine.run(tiny_config(**{"run.seeds": [0, 1], "export.formats": [], "evaluate.latency_repeats": 0}),
               tmp_path / "sweep", on_event=seen.append)
    started = [e for e in seen if e.kind == events.RUN_STARTED]
    assert len(started) == 1
    plan = started[0].data["plan"]
    assert plan["sweep"] and [r["seed"] for r in plan["runs"]] == [0, 1]
    assert [s["name"] for s in plan["runs"][0]["stages"]] == ["teacher", "distill", "baseline", "evaluate"]
    members = [e.data for e in seen if e.kind == events.MEMBER_STARTED]
    assert [(m["index"], m["total"], m["seed"]) for m in members] == [(1, 2, 0), (2, 2, 1)]
    assert seen[-1].kind == events.RUN_FINISHED and seen[-1].data["summary"]["status"] == "completed"
    steps = [e for e in seen if e.kind == events.STEP]
    assert steps and all("total" in e.data["terms"] for e in steps)  # loss terms nested, not spread flat


def test_torch_compile_keeps_its_caches_in_the_run_folder(tmp_path, monkeypatch):
    """distill.compile: Inductor's and Triton's caches go to the run folder, not the system temp folder, and the
    process's environment is as it was after the run."""
    import os
    seen = []

    def fake_compile(model, *a, **k):  # records where torch.compile would write; runs the model as it is
        seen.append({k: os.environ.get(k) for k in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")})
        return model
    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    engine.run(tiny_config(**{"distill.compile": True, "export.formats": [], "evaluate.latency_repeats": 0}),
               tmp_path / "run")
    assert seen and all(str(tmp_path / "run" / "cache" / "torch_compile") in v for s in seen for v in s.values())
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ
