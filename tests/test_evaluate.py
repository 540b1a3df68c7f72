"""Evaluation: metrics against hand-computed values, the run's evaluation.json/summary.json, `kdstudio eval`."""

import json
import math

import pytest
import torch
from torch import nn

from kdstudio.cli import main
from kdstudio.core.outputs import artifacts
from kdstudio.core.pipeline import engine
from kdstudio.core.errors import KDError
from kdstudio.core.outputs.evaluate import (classification_metrics, comparison_table, confusion_matrix, cpu_threads,
                                            expected_calibration_error, flops, median_ms, predict_logits)
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a shared 2-core machine: one thread is faster and steadier
    out = tmp_path_factory.mktemp("eval-run")
    cfg = tiny_config(teacher__epochs=4, distill__epochs=4)
    cfg.evaluate.latency_repeats = 3
    cfg.export.formats = []
    summary = engine.run(cfg, out)
    yield out, summary, json.loads((out / "evaluation.json").read_text())
    torch.set_num_threads(threads)


def test_confusion_matrix_sums_to_the_test_set_size(run):
    out, summary, ev = run
    loaded = artifacts.load_run(out, variants=False)
    n = len(loaded.data.y_test)
    for name, r in ev["models"].items():
        cm = r["confusion"]
        assert sum(map(sum, cm)) == n == r["n"], name
        assert [sum(row) for row in cm] == torch.bincount(loaded.data.y_test, minlength=10).tolist()
        assert math.isclose(sum(cm[i][i] for i in range(len(cm))) / n, r["top1"], abs_tol=1e-6)
        for i, pc in enumerate(r["per_class"]):
            assert pc["name"] == ev["class_names"][i] and math.isclose(pc["accuracy"], cm[i][i] / sum(cm[i]))


def test_metrics_match_the_models_predictions(run):
    out, summary, ev = run
    loaded = artifacts.load_run(out, variants=False)
    x, y = loaded.data.x_test, loaded.data.y_test
    t_pred = predict_logits(loaded.models["teacher"], x).argmax(1)
    s_logits = predict_logits(loaded.models["student"], x)
    s_pred = s_logits.argmax(1)
    r = ev["models"]["student"]
    assert math.isclose(r["top1"], (s_pred == y).float().mean().item(), abs_tol=1e-6)
    assert math.isclose(r["agreement"], (s_pred == t_pred).float().mean().item(), abs_tol=1e-6)
    top5 = (s_logits.topk(5, 1).indices == y[:, None]).any(1).float().mean().item()
    assert math.isclose(r["top5"], top5, abs_tol=1e-6) and r["top5"] >= r["top1"]
    wrong = (s_pred != y).nonzero().flatten().tolist()
    assert r["misclassified_count"] == len(wrong)
    assert [m["index"] for m in r["misclassified"]] == wrong[:len(r["misclassified"])]
    assert all(m["pred"] == s_pred[m["index"]] and m["true"] == y[m["index"]] for m in r["misclassified"])
    # MLP 64 -> 16 -> 10: 2 * (64*16 + 16*10) multiply-adds counted as FLOPs
    assert r["flops"] == 2 * (64 * 16 + 16 * 10)


def test_summary_keeps_the_public_keys_and_adds_the_new_ones(run):
    _, summary, _ = run
    for who in ("teacher", "student"):
        assert {"arch", "params", "accuracy", "bytes", "latency_ms_cpu_b1"} <= set(summary[who])
        assert {"top5", "ece", "flops", "latency_ms_cpu_b64"} <= set(summary[who])
        assert summary[who]["latency_ms_cpu_b1"] > 0
    assert {"accuracy", "params", "val_accuracy", "teacher_agreement"} <= set(summary["baseline"])
    assert {"params_ratio", "size_ratio", "speedup_cpu_b1", "accuracy_kept", "flops_ratio",
            "speedup_cpu_b64"} <= set(summary["compression"])
    assert math.isclose(summary["kd_gain"], summary["student"]["accuracy"] - summary["baseline"]["accuracy"])
    rows = {r["model"]: r for r in summary["evaluation"]["table"]}
    assert set(rows) == {"teacher", "student", "baseline"}
    assert rows["teacher"]["params_ratio"] == 1.0
    assert math.isclose(rows["student"]["params_ratio"], summary["compression"]["params_ratio"])


def test_ece_by_hand():
    # 4 samples, confidences 0.9, 0.9, 0.6, 0.6; correct: yes, no, yes, yes
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    y = torch.tensor([0, 1, 0, 0])
    # bin of 0.9: |0.9 - 0.5| * 2/4 ; bin of 0.6: |0.6 - 1.0| * 2/4
    assert math.isclose(expected_calibration_error(probs, y), 0.2 + 0.2, abs_tol=1e-6)


def test_confusion_and_top5_by_hand():
    logits = torch.tensor([[5.0, 1, 0, 0, 0, 0], [0, 5.0, 1, 0, 0, 0], [0, 5.0, 1, 0, 0, 0]])
    y = torch.tensor([0, 2, 1])
    assert confusion_matrix(logits.argmax(1), y, 6)[2][1] == 1
    m = classification_metrics(logits, y, list("abcdef"), reference_logits=logits)
    assert m["top1"] == pytest.approx(2 / 3) and m["top5"] == 1.0 and m["agreement"] == 1.0
    assert m["per_class"][2] == {"name": "c", "support": 1, "accuracy": 0.0}
    assert m["per_class"][3]["accuracy"] is None  # no test sample of that class
    small = classification_metrics(logits[:, :4], y, list("abcd"))
    assert small["top5"] is None  # fewer than 5 classes


def test_flops_of_a_conv_by_hand():
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False))
    assert flops(conv, (1, 8, 8)) == 2 * 4 * 9 * 8 * 8


def test_comparison_table_ratios():
    a = {"top1": 0.9, "params": 1000, "nonzero_params": 1000, "bytes": 4000, "flops": 100,
         "latency_ms": {"cpu_b1": 2.0}}
    b = {"top1": 0.8, "params": 100, "nonzero_params": 50, "bytes": 400, "flops": 10, "latency_ms": {"cpu_b1": 0.5}}
    rows = {r["model"]: r for r in comparison_table({"teacher": a, "small": b})}
    assert rows["small"]["params_ratio"] == 20 and rows["small"]["size_ratio"] == 10
    assert rows["small"]["speedup"]["cpu_b1"] == 4 and rows["small"]["top1_delta"] == pytest.approx(-0.1)


def test_latency_is_timed_at_the_thread_count_cpu_threads_sets():
    seen = []

    def forward(x):
        seen.append(torch.get_num_threads())
        return x
    before = torch.get_num_threads()
    with cpu_threads(2) as n:
        ms = median_ms(forward, torch.zeros(1), repeats=3, warmup=1)
    assert n == 2 and set(seen) == {2} and len(seen) >= 1 + 3 and ms > 0
    assert torch.get_num_threads() == before


def test_eval_command_reproduces_the_numbers(run, capsys):
    out, summary, ev = run
    assert main(["eval", str(out), "--repeats", "2"]) == 0
    printed = capsys.readouterr().out
    assert "| student |" in printed and "evaluation.json" in printed
    from kdstudio.core.outputs.gain import gain_sentence
    assert f"KD gain {gain_sentence(summary['kd_gain_stats'])}" in printed  # the same test, measured again
    again = json.loads((out / "evaluation.json").read_text())
    for name in ("teacher", "student", "baseline"):
        assert again["models"][name]["top1"] == ev["models"][name]["top1"]
        assert again["models"][name]["confusion"] == ev["models"][name]["confusion"]


def test_gallery_gives_images_of_misclassified_examples(run):
    out, _, ev = run
    items = artifacts.gallery(out, "student", limit=5)
    assert len(items) == min(5, ev["models"]["student"]["misclassified_count"])
    for it in items:
        assert it["image"].shape == (8, 8) and 0 <= it["image"].min() <= it["image"].max() <= 1
        assert it["true"] != it["pred"] and it["true_name"] == ev["class_names"][it["true"]]


def test_eval_of_a_folder_that_is_not_a_finished_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a KD Studio run folder" in err
    from kdstudio.core import config
    config.save(tiny_config(), tmp_path / "config.toml")
    with pytest.raises(KDError, match="no distilled student"):
        artifacts.load_run(tmp_path)


def test_summary_json_carries_the_kd_gains_paired_test_from_the_evaluate_stage(run):
    from kdstudio.core.outputs import gain
    out, summary, ev = run
    stats = json.loads((out / "summary.json").read_text())["kd_gain_stats"]
    assert stats == summary["kd_gain_stats"] and stats["test"] == "paired"
    assert stats["n"] == ev["models"]["student"]["n"]
    assert stats["low"] <= stats["gain"] <= stats["high"] and 0 <= stats["p"] <= 1
    assert math.isclose(stats["gain"], summary["kd_gain"], abs_tol=1e-6)
    for who in ("student", "baseline"):  # every wrong index, not only the gallery's first ones
        m = ev["models"][who]
        assert len(m["misclassified_indices"]) == m["misclassified_count"]
    assert gain.from_metrics(ev["models"]) == stats  # measured from the same per-sample correctness
    log = (out / "log.txt").read_text()
    assert f"KD gain: {gain.gain_sentence(stats)}." in log
