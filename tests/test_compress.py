"""Compression: each step's variant, evaluated like the student; int8 within 2 points; pruning made permanent."""

import math

import pytest
import torch
from torch import nn

from kdstudio.cli import main
from kdstudio.core.outputs import artifacts, compress
from kdstudio.core.pipeline import engine
from kdstudio.core import events, models
from kdstudio.core.outputs.channel_prune import apply_plan, find_links, prune_channels
from kdstudio.core.errors import KDError
from kdstudio.core.outputs.evaluate import predict_logits
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("compress-mlp")
    cfg = tiny_config(teacher__epochs=6, distill__epochs=12, student__width=32)
    c = cfg.compress
    c.finetune_epochs, c.prune, c.prune_finetune_epochs, c.int8, c.half = 1, 0.5, 1, "auto", "fp16"
    cfg.evaluate.latency_repeats = 2
    cfg.export.formats = ["state_dict"]
    seen = []
    summary = engine.run(cfg, out, on_event=seen.append)
    yield out, summary, seen
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("compress-cnn")
    cfg = tiny_config(teacher__epochs=3, distill__epochs=4, student__arch="cnn", student__width=8,
                      student__depth=2, baseline__enabled=False)
    cfg.compress.channel_prune, cfg.compress.prune_finetune_epochs, cfg.compress.int8 = 0.5, 1, "auto"
    cfg.evaluate.latency_repeats = 2
    cfg.export.formats = ["torchscript"]
    summary = engine.run(cfg, out)
    yield out, summary
    torch.set_num_threads(threads)


def _rows(summary):
    return {r["model"]: r for r in summary["evaluation"]["table"]}


def test_variants_come_in_order_and_each_is_evaluated(mlp_run):
    _, summary, seen = mlp_run
    recs = summary["compress"]["variants"]
    assert [(r["name"], r["parent"]) for r in recs] == [("finetune", "student"), ("prune", "finetune"),
                                                       ("int8", "prune"), ("fp16", "prune")]
    rows = _rows(summary)
    assert list(rows) == ["teacher", "student", "baseline", "finetune", "prune", "int8", "fp16"]
    for name in ("finetune", "prune", "int8", "fp16"):
        assert rows[name]["n"] == rows["student"]["n"] and 0 <= rows[name]["top1"] <= 1
    started = [e.stage for e in seen if e.kind == events.STAGE_STARTED]
    assert started == ["teacher", "distill", "baseline", "finetune", "compress", "evaluate", "export"]
    assert summary["exports"][0]["model"] == "prune"  # export.model = "auto": the last float variant


def test_int8_student_stays_within_two_points_of_fp32(mlp_run):
    _, summary, _ = mlp_run
    rows = _rows(summary)
    assert summary["compress"]["variants"][2]["quant"] == "dynamic"
    assert rows["prune"]["top1"] > 0.5  # a student that learned something, so the comparison means something
    assert abs(rows["int8"]["top1"] - rows["prune"]["top1"]) <= 0.02
    assert rows["int8"]["bytes"] < rows["prune"]["bytes"]
    assert abs(rows["fp16"]["top1"] - rows["prune"]["top1"]) <= 0.01 and rows["fp16"]["dtype"] == "float16"


def test_magnitude_pruning_is_permanent(mlp_run):
    out, summary, _ = mlp_run
    state = torch.load(out / "checkpoints" / "prune.pt", weights_only=True)["model"]
    assert not any(k.endswith(("_orig", "_mask")) for k in state)
    weights = [v for k, v in state.items() if k.endswith("weight")]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.5, abs=0.01)
    assert summary["compress"]["variants"][1]["sparsity"] == pytest.approx(zeros)
    assert _rows(summary)["prune"]["nonzero_params"] < _rows(summary)["finetune"]["nonzero_params"]


def test_variants_rebuild_from_the_run_folder(mlp_run):
    out, summary, _ = mlp_run
    run = artifacts.load_run(out)
    assert set(run.models) >= {"finetune", "prune", "int8", "fp16"}
    x, y = run.data.x_test, run.data.y_test
    for name in ("finetune", "prune", "int8", "fp16"):
        acc = (predict_logits(run.models[name], x).argmax(1) == y).float().mean().item()
        assert math.isclose(acc, _rows(summary)[name]["top1"], abs_tol=1e-6), name


def test_channel_pruning_and_static_int8_on_a_conv_student(cnn_run):
    out, summary = cnn_run
    recs = {r["name"]: r for r in summary["compress"]["variants"]}
    assert recs["channels"]["plan"] == {"features.0.0": 4, "features.1.0": 8}
    assert recs["int8"]["quant"] == "static" and recs["int8"]["parent"] == "channels"
    rows = _rows(summary)
    assert rows["channels"]["params"] < rows["student"]["params"]
    assert rows["channels"]["flops"] < rows["student"]["flops"]
    assert rows["int8"]["flops"] == rows["channels"]["flops"]  # int8 reports its float parent's FLOPs
    assert rows["int8"]["agreement"] is not None and rows["int8"]["top1"] >= rows["channels"]["top1"] - 0.05
    run = artifacts.load_run(out)
    shrunk = run.models["channels"]
    assert shrunk.features[0][0].out_channels == 4 and shrunk.classifier.in_features == 8


def test_channel_pruning_keeps_residual_convs_and_reloads_exactly():
    torch.manual_seed(0)
    net = models.build("resnet8", 10, (3, 16, 16)).eval()
    links = {link.conv for link in find_links(net)}
    assert links == {"layer1.0.conv1", "layer2.0.conv1", "layer3.0.conv1"}  # conv2 outputs feed a residual add
    plan = prune_channels(net, 0.5)
    rebuilt = apply_plan(models.build("resnet8", 10, (3, 16, 16)), plan).eval()
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(4, 3, 16, 16)
    assert torch.equal(rebuilt(x), net(x))
    with pytest.raises(KDError, match="no conv layer"):
        prune_channels(models.build("mlp", 10, (1, 8, 8)), 0.5)


def test_global_magnitude_pruning_by_hand():
    a, b = nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[0.1, -5.0], [3.0, 0.2]]))
        b.weight.copy_(torch.tensor([[-0.3, 4.0]]))
    net = compress.make_permanent(compress.magnitude_prune(nn.Sequential(a, b), 0.5))
    assert net[0].weight.tolist() == [[0.0, -5.0], [3.0, 0.0]] and net[1].weight.tolist() == [[0.0, 4.0]]
    assert compress.weight_sparsity(net) == 0.5


def test_quantization_unsupported_by_the_cpu_backend(mlp_run, monkeypatch, capsys, tmp_path):
    out, _, _ = mlp_run
    monkeypatch.setattr(compress, "supported_engines", lambda: [])
    with pytest.raises(KDError, match="not supported by this CPU"):
        compress.quantize_int8(models.build("mlp", 10, (1, 8, 8)))
    assert main(["export", str(out), "--format", "torchscript", "--quantize", "int8", "--out",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "int8" in err and "not supported by this CPU" in err
    assert not list(tmp_path.glob("*.pt"))


def test_unsupported_int8_in_a_run_is_a_warning_and_the_run_goes_on(monkeypatch, tmp_path):
    monkeypatch.setattr(compress, "supported_engines", lambda: [])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = tiny_config(teacher__epochs=1, distill__epochs=1, baseline__enabled=False,
                          teacher__skip_sanity_check=True)  # a 1-epoch teacher may score near chance
        cfg.compress.int8, cfg.evaluate.latency_repeats, cfg.export.formats = "dynamic", 0, []
        seen = []
        summary = engine.run(cfg, tmp_path, on_event=seen.append)
    finally:
        torch.set_num_threads(threads)
    assert summary["status"] == "completed" and summary["compress"]["variants"] == []
    warnings = [e.data["message"] for e in seen if e.kind == events.WARNING]
    assert any("int8 variant skipped" in w and "not supported by this CPU" in w for w in warnings)


def test_exporting_a_step_that_is_off_is_refused_before_the_run():
    from kdstudio.core import config
    from kdstudio.core.errors import ConfigError
    cfg = tiny_config()
    cfg.export.model = "channels"
    with pytest.raises(ConfigError, match="compression step is off") as info:
        config.validate(cfg)
    assert info.value.key == "export.model"


def test_a_stop_during_a_pruning_fine_tune_resumes_it_where_it_stopped(tmp_path):
    cfg = tiny_config(baseline__enabled=False)
    c = cfg.compress
    c.prune, c.prune_finetune_epochs, c.int8, c.half = 0.5, 2, "none", "none"
    cfg.evaluate.latency_repeats = 2
    cfg.export.formats = []
    engine.run(cfg.copy(), tmp_path / "full")
    control = events.RunControl()

    def stop_in_second_epoch(e):
        if e.stage == "compress" and e.kind == events.STEP and e.data["epoch"] == 2:
            control.stop()

    assert engine.run(cfg.copy(), tmp_path / "part", on_event=stop_in_second_epoch,
                      control=control)["status"] == "stopped"
    assert (tmp_path / "part" / "checkpoints" / ".prune.train.pt").is_file()
    logs = []
    summary = engine.run(None, tmp_path / "part", resume=True,
                         on_event=lambda e: logs.append(e.data.get("message", "")) if e.kind == events.LOG else None)
    assert summary["status"] == "completed"
    assert any(m.startswith("Resumed compress at epoch 2") for m in logs), logs
    assert not (tmp_path / "part" / "checkpoints" / ".prune.train.pt").exists()
    full = torch.load(tmp_path / "full" / "checkpoints" / "prune.pt", weights_only=False)["model"]
    part = torch.load(tmp_path / "part" / "checkpoints" / "prune.pt", weights_only=False)["model"]
    for k in full:
        assert torch.allclose(full[k], part[k], atol=1e-6), k
