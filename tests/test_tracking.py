"""[tracking]: what the run writes is read back with TensorBoard's and MLflow's own readers."""

import importlib.util
import json

import pytest

from kdstudio.core import config
from kdstudio.core.errors import ConfigError
from kdstudio.core.outputs import tracking
from kdstudio.core.pipeline import engine
from tests.helpers import tiny_config

EPOCHS = 3


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if importlib.util.find_spec("tensorboard") is None or importlib.util.find_spec("mlflow") is None:
        pytest.skip("tensorboard and mlflow (pip install tensorboard mlflow-skinny) are not installed here")
    root = tmp_path_factory.mktemp("tracking")
    cfg = tiny_config(distill__epochs=EPOCHS)
    cfg.evaluate.latency_repeats = 0
    cfg.tracking.tensorboard = True
    cfg.tracking.mlflow = f"file:{root / 'mlruns'}"
    cfg.tracking.experiment = "digits"
    summary = engine.run(cfg, root / "run")
    return root, summary


def _records(out, kind, stage):
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in lines if r["kind"] == kind and r["stage"] == stage]


def test_tensorboard_reads_every_term_lr_and_accuracy(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    root, summary = run
    out = root / "run"
    acc = EventAccumulator(str(out / tracking.TENSORBOARD_DIR))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    steps = _records(out, "step", "distill")
    for term in ("total", "kd", "ce"):
        assert f"distill/{term}" in tags and f"distill/epoch/{term}" in tags, term
    assert [s.value for s in acc.Scalars("distill/total")] == pytest.approx([r["total"] for r in steps])
    assert [s.step for s in acc.Scalars("distill/lr")] == [r["global_step"] for r in steps]
    val = acc.Scalars("distill/epoch/val_acc")
    assert [s.step for s in val] == list(range(1, EPOCHS + 1))
    assert [s.value for s in val] == pytest.approx([r["val_acc"] for r in _records(out, "epoch", "distill")])
    assert {"teacher/total", "baseline/epoch/val_acc"} <= tags
    assert acc.Scalars("hparam/test_acc/student")[0].value == pytest.approx(summary["student"]["accuracy"])


def test_tensorboard_hparams_plugin_holds_the_run_and_its_final_metrics(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2
    root, summary = run
    acc = EventAccumulator(str(root / "run" / tracking.TENSORBOARD_DIR))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    data = {tag: plugin_data_pb2.HParamsPluginData.FromString(raw) for tag, raw in content.items()}
    session = next(d.session_start_info for d in data.values() if d.HasField("session_start_info"))
    assert session.hparams["distill.method"].string_value == "kd"
    assert session.hparams["distill.temperature"].number_value == 4.0
    assert session.hparams["status"].string_value == "completed"
    experiment = next(d.experiment for d in data.values() if d.HasField("experiment"))
    names = {m.name.tag for m in experiment.metric_infos}
    assert {"hparam/test_acc/student", "hparam/test_acc/teacher", "hparam/kd_gain"} <= names


def test_mlflow_reads_params_metrics_and_the_exported_student(run):
    from mlflow.tracking import MlflowClient
    root, summary = run
    client = MlflowClient(tracking_uri=f"file:{root / 'mlruns'}")
    exp = client.get_experiment_by_name("digits")
    (found,) = client.search_runs([exp.experiment_id])
    assert found.info.status == "FINISHED" and found.info.run_name == "run"
    ids = json.loads((root / "run" / tracking.MLFLOW_RUN_FILE).read_text())
    assert ids["run_id"] == found.info.run_id
    params = found.data.params
    assert params["distill.method"] == "kd" and params["distill.epochs"] == str(EPOCHS)
    assert params["tracking.tensorboard"] == "True"
    history = client.get_metric_history(found.info.run_id, "distill/epoch/val_acc")
    assert [m.step for m in history] == list(range(1, EPOCHS + 1))
    steps = client.get_metric_history(found.info.run_id, "distill/total")
    assert len(steps) == len(_records(root / "run", "step", "distill"))
    assert found.data.metrics["test_acc/student"] == pytest.approx(summary["student"]["accuracy"])
    assert found.data.metrics["kd_gain"] == pytest.approx(summary["kd_gain"])
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id, "exports")}
    assert {"exports/MODEL_CARD.md", "exports/student.torchscript.pt", "exports/student.state_dict.pt"} <= artifacts
    assert "summary.json" in {a.path for a in client.list_artifacts(found.info.run_id)}


def test_a_missing_tracking_package_warns_once_and_the_run_completes(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("tensorboard", "mlflow") else real(name, *a))
    cfg = tiny_config(distill__epochs=1)
    cfg.baseline.enabled = False
    cfg.evaluate.latency_repeats = 0
    cfg.tracking.tensorboard = True
    cfg.tracking.mlflow = f"file:{tmp_path / 'mlruns'}"
    summary = engine.run(cfg, tmp_path / "run")
    log = (tmp_path / "run" / "log.txt").read_text()
    assert summary["status"] == "completed"
    assert log.count("pip install tensorboard") == 1 and log.count("pip install mlflow-skinny") == 1
    assert not (tmp_path / "run" / tracking.TENSORBOARD_DIR).exists() and not (tmp_path / "mlruns").exists()


def test_tracking_section_reads_from_toml_and_names_a_misspelt_key(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[tracking]\ntensorboard = true\nmlflow = "file:./mlruns"\n')
    cfg = config.load(path)
    assert cfg.tracking.tensorboard is True and cfg.tracking.mlflow == "file:./mlruns"
    path.write_text("[tracking]\ntensorbord = true\n")
    with pytest.raises(ConfigError, match="tracking.tensorboard"):
        config.load(path)


def test_no_tracking_adds_no_listener(tmp_path):
    def sink(e):
        return None
    from kdstudio.core.store.files import RunDir
    assert tracking.listen(tiny_config(), RunDir(tmp_path), sink) is sink
