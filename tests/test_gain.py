"""The KD gain's uncertainty (core/outputs/gain.py): McNemar, the paired bootstrap, the t-test over seeds, the words,
and every place that carries them (summary.json's schema, a sweep's rows, the CLI's end-of-run lines)."""

import math
import random
import statistics

import pytest

from kdstudio.core.outputs import gain
from kdstudio.core.pipeline import sweep
from kdstudio.core.store import summary as summary_mod


def _paired(n: int, p_base: float, p_student: float, rng: random.Random):
    """Wrong-index lists of two correlated classifiers on n samples (the student fixes some baseline errors)."""
    s_wrong, b_wrong = [], []
    for i in range(n):
        u = rng.random()
        if u < 1 - p_base:
            b_wrong.append(i)
        if u < 1 - p_student or (u < 1 - p_base and rng.random() < 0.2):  # shared errors plus a few of its own
            s_wrong.append(i)
    return s_wrong, b_wrong


# ---- statistics against known values ------------------------------------------------------------------------

def test_mcnemar_exact_p_against_hand_computed_values():
    assert gain.mcnemar_p(3, 1) == pytest.approx(2 * (1 + 4) / 16)    # C(4,0) + C(4,1) of 2^4, two-sided
    assert gain.mcnemar_p(0, 5) == pytest.approx(2 / 32)
    assert gain.mcnemar_p(10, 0) == pytest.approx(2 / 1024)
    assert gain.mcnemar_p(2, 2) == 1.0 and gain.mcnemar_p(0, 0) == 1.0
    exact = 2 * sum(math.comb(100, i) for i in range(41)) / 2 ** 100    # many disagreements: log space still exact
    assert gain.mcnemar_p(60, 40) == pytest.approx(exact, rel=1e-9)


def test_t_distribution_matches_the_table_and_the_seed_test_a_hand_computed_one():
    for df, t in ((1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (10, 2.228), (30, 2.042)):
        assert gain.t_abs_cdf(t, df) == pytest.approx(0.95, abs=1e-4)
        assert gain.t_quantile(0.95, df) == pytest.approx(t, abs=1e-3)
    g = gain.seed_test([0.01, 0.02, 0.03])  # mean 0.02, sd 0.01, t = 0.02 / (0.01 / √3) = 2√3, df 2
    t = 2 * math.sqrt(3)
    assert g["gain"] == pytest.approx(0.02) and g["std"] == pytest.approx(0.01) and g["t"] == pytest.approx(t)
    assert g["p"] == pytest.approx(1 - t / math.sqrt(t * t + 2))  # df 2: P(|T| ≤ t) = t / √(t² + 2)
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert (g["low"], g["high"]) == (pytest.approx(0.02 - half, abs=1e-6), pytest.approx(0.02 + half, abs=1e-6))
    assert gain.seed_test([0.01])["p"] is None and gain.seed_test([None]) is None


def test_paired_bootstrap_interval_contains_the_true_difference_on_synthetic_data():
    rng = random.Random(7)
    n, truth = 4000, _expected(0.80, 0.03)
    s_wrong, b_wrong = _paired(n, 0.80, 0.83, rng)
    g = gain.paired_gain(s_wrong, b_wrong, n)
    assert g["gain"] == pytest.approx((len(b_wrong) - len(s_wrong)) / n)
    assert g["low"] < truth < g["high"] and g["low"] > 0  # a real gain of 2.4 points on 4000 samples is seen
    # the bootstrap agrees with the paired normal interval (±1.96 se over the disagreements) to a tenth of a point
    b, w = g["better"], g["worse"]
    se = math.sqrt(b + w - (b - w) ** 2 / n) / n
    assert g["low"] == pytest.approx(g["gain"] - 1.959964 * se, abs=1e-3)
    assert g["high"] == pytest.approx(g["gain"] + 1.959964 * se, abs=1e-3)
    assert gain.paired_gain(s_wrong, b_wrong, n) == g  # fixed seed: the same run gets the same interval
    # over many synthetic test sets, about 95 % of the intervals hold the true difference
    hits, truth = 0, _expected(0.85, 0.03)
    for _ in range(100):
        s_wrong, b_wrong = _paired(600, 0.85, 0.88, rng)
        g = gain.paired_gain(s_wrong, b_wrong, 600, resamples=2000)
        hits += g["low"] <= truth <= g["high"]
    assert 88 <= hits <= 100


def _expected(p_base: float, truth: float) -> float:
    """The true gain of _paired(n, p_base, p_base + truth): the student also keeps 20 % of the baseline errors it
    would fix, which lowers its gain below `truth`."""
    base_err, student_err = 1 - p_base, 1 - p_base - truth
    return base_err - (student_err + 0.2 * (base_err - student_err))


def test_from_metrics_reads_every_wrong_index_or_says_it_cannot():
    def model(wrong, listed=None, full=True):
        m = {"n": 100, "top1": 1 - len(wrong) / 100, "misclassified_count": len(wrong),
             "misclassified": [{"index": i} for i in wrong][:listed]}
        return {**m, "misclassified_indices": list(wrong)} if full else m
    g = gain.from_metrics({"student": model([1, 2]), "baseline": model([1, 3, 4, 5])})
    assert (g["better"], g["worse"], g["gain"]) == (3, 1, pytest.approx(0.02)) and g["p"] == pytest.approx(0.625)
    old = {"student": model([1, 2], full=False), "baseline": model([1, 3, 4, 5], full=False)}  # an older file
    assert gain.from_metrics(old)["better"] == 3
    old["baseline"] = model([1, 3, 4, 5], listed=2, full=False)  # its list was cut short: no paired test
    assert gain.from_metrics(old) is None
    assert gain.from_metrics({"student": model([1])}) is None  # no baseline


# ---- the words follow the figures -----------------------------------------------------------------------------

def _stats(low, high, p, g=None, **more):
    return {"test": "paired", "n": 359, "gain": (low + high) / 2 if g is None else g, "low": low, "high": high,
            "confidence": 0.95, "p": p, "better": 5, "worse": 4, **more}


def test_sentences_for_helped_within_noise_and_hurt():
    assert gain.gain_sentence(_stats(0.009, 0.034, 0.002, g=0.021)) == \
        "+2.1 pts (95 % CI +0.9…+3.4, McNemar p = 0.002): distillation helped"
    assert gain.gain_sentence(_stats(-0.006, 0.011, 0.75, g=0.003)) == \
        "+0.3 pts, within noise (95 % CI −0.6…+1.1 pts, McNemar p = 0.75); run 3+ seeds to tell"
    assert gain.gain_sentence(_stats(-0.025, -0.003, 0.01, g=-0.014)) == \
        "−1.4 pts (95 % CI −2.5…−0.3, McNemar p = 0.01): distillation hurt"
    seeds = gain.seed_test([0.010, 0.012, 0.015])
    assert gain.gain_sentence(seeds).startswith("+1.2 ± 0.3 pts over 3 seeds (95 % CI +0.6…+1.9, paired t-test p = ")
    assert gain.gain_sentence(seeds).endswith("): distillation helped")
    assert "within noise" in gain.gain_sentence(gain.seed_test([0.01, -0.012, 0.015]))
    assert "not measured" in gain.gain_sentence(None, 0.003) and "helped" not in gain.gain_sentence(None, 0.05)
    assert "no baseline" in gain.gain_sentence(None)
    assert gain.gain_sentence(_stats(-0.006, 0.011, 0.75), lead=False) == \
        "within noise (95 % CI −0.6…+1.1 pts, McNemar p = 0.75); run 3+ seeds to tell"  # beside a card's figure
    assert gain.gain_sentence(_stats(0.009, 0.034, 0.002), lead=False) == \
        "distillation helped (95 % CI +0.9…+3.4 pts, McNemar p = 0.002)"
    assert gain.verdict(_stats(0.001, 0.02, 0.08)) == "noise"  # interval and test must both agree to say helped


def test_no_sentence_says_helped_when_the_interval_holds_zero():
    rng = random.Random(3)
    for _ in range(500):
        low = rng.uniform(-0.05, 0.05)
        s = _stats(low, low + rng.uniform(0, 0.05), rng.uniform(0, 1))
        text = gain.gain_sentence(s)
        assert ("helped" in text) == (s["low"] > 0 and s["p"] < 0.05)
        assert ("hurt" in text) == (s["high"] < 0 and s["p"] < 0.05)
    gains = [rng.gauss(0.0, 0.01) for _ in range(3)]
    st = gain.seed_test(gains)
    assert ("helped" in gain.gain_sentence(st)) == (st["low"] > 0)
    assert gain.gain_sentence({"gain": "x"}, 0.01) == gain.gain_sentence(None, 0.01)  # damaged stats: not measured


# ---- where the gain is stored and shown --------------------------------------------------------------------

def test_summary_json_carries_the_gain_test_and_rejects_a_damaged_one():
    metrics = {w: {"top1": a, "n": 359} for w, a in (("teacher", 0.97), ("student", 0.95), ("baseline", 0.94))}
    stats = _stats(-0.006, 0.03, 0.2, g=0.01)
    s = summary_mod.Summary(status="completed")
    s.apply_evaluation(metrics, [{"model": "student"}], stats)
    back = summary_mod.loads(summary_mod.dumps(s))
    assert back.kd_gain_stats == stats and back.to_json()["kd_gain_stats"]["p"] == 0.2
    s = summary_mod.Summary(status="completed")
    s.apply_evaluation({k: v for k, v in metrics.items() if k != "baseline"}, [], stats)
    assert s.kd_gain_stats is None  # no baseline, no gain, no test
    with pytest.raises(summary_mod.SummaryError, match="kd_gain_stats.low"):
        summary_mod.loads('{"status": "completed", "kd_gain_stats": {"gain": 0.1, "low": "x"}}')
    assert summary_mod.loads('{"status": "completed"}').kd_gain_stats is None  # an older run: not measured


def test_a_point_of_seeds_gets_the_paired_t_test_and_one_seed_keeps_its_own_test():
    def member(seed, s_acc, b_acc, stats=None):
        return {"status": "completed", "seed": seed, "student": {"accuracy": s_acc}, "baseline": {"accuracy": b_acc},
                "teacher": {"accuracy": 0.99}, "kd_gain_stats": stats}
    row = sweep.summarize_point({}, [member(0, 0.95, 0.94), member(1, 0.96, 0.94), member(2, 0.97, 0.94)])
    st = row["kd_gain_stats"]
    assert st["test"] == "seeds" and st["n"] == 3 and st["gain"] == pytest.approx(0.02)
    assert st["std"] == pytest.approx(statistics.stdev([0.01, 0.02, 0.03]))
    assert st["p"] == pytest.approx(gain.seed_test([0.01, 0.02, 0.03])["p"])
    own = _stats(0.001, 0.02, 0.03)
    assert sweep.summarize_point({}, [member(0, 0.95, 0.94, own)])["kd_gain_stats"] == own
    table = sweep.format_table({"rows": [{**row, "best": True}], "seeds": [0, 1, 2], "criterion": "test"})
    assert "- KD gain +2.0 ± 1.0 pts over 3 seeds" in table and "paired t-test" in table


def test_the_end_of_run_lines_say_the_sentence(capsys):
    from kdstudio.progress import ProgressPrinter
    stats = _stats(-0.006, 0.011, 0.75, g=0.003)
    entry = {"params": 1000, "accuracy": 0.95}
    ProgressPrinter().print_summary({"status": "completed", "device": "cpu", "teacher": entry, "student": entry,
                                 "baseline": entry, "compression": {"params_ratio": 2.0}, "kd_gain": 0.003,
                                 "kd_gain_stats": stats}, "OUT")
    out = capsys.readouterr().out
    assert f"KD gain   {gain.gain_sentence(stats)}" in out and "within noise (95 % CI −0.6…+1.1 pts" in out
