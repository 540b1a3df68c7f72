"""summary.json: one schema, strict JSON, read back through the same schema; a damaged file is one run's problem."""

import json
import math

import pytest

from kdstudio.core.store import summary as summary_mod
from kdstudio.core.store.projects import ProjectStore
from kdstudio.core.store.summary import ModelEntry, Summary, SummaryError


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"{name} in strict JSON")
    return json.loads(text, parse_constant=refuse)


def _evaluated() -> Summary:
    s = Summary(status="completed", started="2026-12-01T10:00:00", device="cpu",
                teacher=ModelEntry(arch="cnn", params=1000), student=ModelEntry(arch="mlp", params=100),
                baseline=ModelEntry(arch="mlp", params=100))
    metrics = {"teacher": {"top1": 0.9, "params": 1000, "bytes": 4000, "flops": 800, "latency_ms": {"cpu_b1": 2.0}},
               "student": {"top1": 0.85, "params": 100, "bytes": 400, "flops": 80, "agreement": 0.9,
                           "latency_ms": {"cpu_b1": 0.5}},
               "baseline": {"top1": 0.8, "params": 100, "bytes": 400, "flops": 80, "agreement": 0.88,
                            "latency_ms": {"cpu_b1": float("nan")}}}
    table = [{"model": "teacher"}, {"model": "student", "size_ratio": 10.0, "flops_ratio": 10.0,
                                    "speedup": {"cpu_b1": 4.0}}, {"model": "baseline"}]
    s.apply_evaluation(metrics, table)
    return s


def test_ratios_and_gain_are_computed_once_from_the_table():
    s = _evaluated()
    assert s.compression["params_ratio"] == 10.0 and s.compression["speedup_cpu_b1"] == 4.0
    assert s.compression["size_ratio"] == 10.0 and math.isclose(s.compression["accuracy_kept"], -0.05)
    assert math.isclose(s.kd_gain, 0.05)


def test_written_summary_is_strict_json_and_reads_back_the_same(tmp_path):
    s = _evaluated()
    s.distill = summary_mod.StageTiming(epochs=3, samples_per_s=float("inf"))
    summary_mod.write(tmp_path / "summary.json", s)
    raw = _strict((tmp_path / "summary.json").read_text())
    assert raw["schema_version"] == summary_mod.SCHEMA_VERSION
    assert raw["baseline"]["latency_ms_cpu_b1"] is None and raw["distill"]["samples_per_s"] is None
    back = summary_mod.read(tmp_path / "summary.json")
    assert back.to_json() == raw
    assert back.student.latency_ms == {"cpu_b1": 0.5} and back.kd_gain == pytest.approx(0.05)


@pytest.mark.parametrize("text, words", [
    ('{"status": "completed", "student": "oops"}', "'student' must be a table"),
    ('{"status": "completed", "student": {"accuracy": "high"}}', "'accuracy' must be a number"),
    ('{"status": "completed", "student": {"accuracy": true}}', "'accuracy' must be a number"),
    ('["a", "list"]', "not a run summary"),
    ('{"status": "exploded"}', "status 'exploded' is not one of"),
    ('{"status": "completed", "kd_gain": NaN}', "damaged"),
    ('{"status": "compl', "damaged"),
    ('{"schema_version": 99}', "newer KD Studio"),
    ('{"status": "completed", "exports": {"a": 1}}', "'exports' must be a list of tables"),
])
def test_a_damaged_or_foreign_summary_gives_one_sentence(text, words):
    with pytest.raises(SummaryError) as e:
        summary_mod.loads(text, "run/summary.json")
    assert words in str(e.value) and "run/summary.json" in str(e.value)


def test_a_version_1_summary_reads_through_the_schema():
    old = {"status": "completed", "started": "x", "device": "cpu", "teacher": {"arch": "cnn", "accuracy": 0.99,
           "latency_ms_cpu_b1": 0.2}, "student": {"arch": "mlp", "accuracy": 1.0}, "baseline": None,
           "distill": {"epochs": 60, "method": "kd", "wall_s": 1.3}, "exports": [], "kd_gain": None}
    s = Summary.from_json(old)
    assert s.teacher.latency_ms == {"cpu_b1": 0.2} and s.baseline is None and s.distill.epochs == 60


def test_the_project_list_shows_a_damaged_summary_as_one_damaged_run(tmp_path):
    store = ProjectStore(tmp_path / "projects")
    project = store.create("P")
    good, bad = project.runs_dir / "20261201-100000", project.runs_dir / "20261201-110000"
    for folder in (good, bad):
        folder.mkdir(parents=True)
    summary_mod.write(good / "summary.json", _evaluated())
    (bad / "summary.json").write_text('{"status": "completed", "student": "oops"}', encoding="utf-8")
    runs = {r.path.name: r for r in project.runs()}
    assert runs[good.name].status == "completed"
    assert runs[bad.name].status == "damaged" and "'student' must be a table" in runs[bad.name].summary["error"]


def test_an_export_again_replaces_its_entries_and_keeps_failures_of_other_exports(tmp_path):
    old = [{"format": "onnx", "path": str(tmp_path / "a" / "student.onnx"), "bytes": 1},
           {"format": "onnx", "path": str(tmp_path / "a" / "x" / ".." / "student.onnx"), "bytes": 2}]
    new = [{"format": "onnx", "path": str(tmp_path / "a" / "student.onnx"), "bytes": 3}]
    assert summary_mod.merge_exports(old, new) == new  # one entry per file, however its path was spelled
    failed = [{"format": "onnx", "error": "e1", "quantize": "int8", "out": str(tmp_path / "a")},
              {"format": "onnx", "error": "e2", "quantize": "none", "out": str(tmp_path / "a")},
              {"format": "safetensors", "error": "e3"}]  # an older entry: no weights or folder recorded
    merged = summary_mod.merge_export_failed(failed, ["onnx", "safetensors"], "none", tmp_path / "b", [])
    assert [f["error"] for f in merged] == ["e1", "e2"]  # only the folder-less entry counts as this export's
    merged = summary_mod.merge_export_failed(failed, ["onnx"], "int8", tmp_path / "a" / ".", [
        {"format": "onnx", "error": "e4", "quantize": "int8", "out": str(tmp_path / "a")}])
    assert [f["error"] for f in merged] == ["e2", "e3", "e4"]


def test_each_export_is_judged_by_its_own_parity_rule():
    from kdstudio.core.outputs import parity
    assert parity.verdict({"format": "onnx", "quantize": "int8", "max_abs_diff": 0.03,
                           "top1_agreement": 0.994}) == (True, "✓ agrees 99.4%")
    assert parity.verdict({"format": "onnx", "quantize": "int8", "top1_agreement": 0.95})[1] == \
        "✗ agrees only 95.0% (needs 97%)"
    assert parity.verdict({"format": "state_dict", "quantize": "int8", "top1_agreement": 0.994})[0] is False
    assert parity.verdict({"format": "torchscript", "quantize": "none", "max_abs_diff": 2e-7}) == (True, "✓ matches")
    assert parity.verdict({"format": "torchscript", "quantize": "fp16", "max_abs_diff": 0.5})[1].startswith(
        "✗ differs")
    assert parity.verdict({"format": "onnx"}) == (False, "✗ not checked")
