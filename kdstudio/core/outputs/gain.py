"""The KD gain (student − baseline top-1) with its uncertainty, and the one sentence that says what it means.

One run: a paired test over the test samples. Student and baseline are scored on the same samples, so only the
samples where they disagree carry information: `better` (student right, baseline wrong) and `worse` (the reverse).
The 95 % interval is a paired bootstrap (samples resampled with replacement, which amounts to drawing the
better/worse/tied counts from a multinomial); the p-value is McNemar's exact test (a two-sided binomial test on
the disagreements).

Several seeds (`run.seeds`, a sweep's point): mean ± sample std of the per-seed gains and a paired t-test over the
seeds (each seed's student and baseline share the seed's initial weights and data order, so the per-seed gain is
a paired difference; the t-test asks whether its mean is 0), with the matching t interval.

"helped" / "hurt" are said only when the interval excludes 0 and p < 0.05; anything else is "within noise".
Torch-free (numpy only inside the bootstrap), so the window and the report read these without loading torch.
"""

from __future__ import annotations

import math
import statistics

CONFIDENCE = 0.95
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed: the same run gives the same interval every time it is evaluated
MINUS = "−"


# ---- one run: paired over the test samples ----------------------------------------------------------------

def mcnemar_p(better: int, worse: int) -> float:
    """McNemar's exact two-sided p-value: P(a split of better + worse disagreements at least this uneven | 50/50)."""
    m, k = better + worse, min(better, worse)
    if m == 0:
        return 1.0
    # log-space terms: exact enough, and fast for tens of thousands of disagreements
    logs = [math.lgamma(m + 1) - math.lgamma(i + 1) - math.lgamma(m - i + 1) - m * math.log(2) for i in range(k + 1)]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(v - top) for v in logs)
    return min(1.0, 2 * tail)


def bootstrap_interval(better: int, worse: int, n: int, *, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED,
                       confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of (better − worse) / n when the n paired test samples are resampled with replacement."""
    import numpy as np
    if n <= 0:
        raise ValueError("a paired bootstrap needs at least one test sample")
    pb, pw = better / n, worse / n
    counts = np.random.default_rng(seed).multinomial(n, [pb, pw, max(0.0, 1.0 - pb - pw)], size=resamples)
    gains = (counts[:, 0] - counts[:, 1]) / n
    alpha = (1 - confidence) / 2
    low, high = np.quantile(gains, [alpha, 1 - alpha])
    return float(low), float(high)


def paired_gain(student_wrong, baseline_wrong, n: int, **bootstrap) -> dict:
    """The paired test from the indices each model got wrong on the same n test samples."""
    s_wrong, b_wrong = set(student_wrong), set(baseline_wrong)
    better, worse = len(b_wrong - s_wrong), len(s_wrong - b_wrong)
    low, high = bootstrap_interval(better, worse, n, **bootstrap)
    return {"test": "paired", "n": n, "gain": (better - worse) / n, "low": low, "high": high,
            "confidence": bootstrap.get("confidence", CONFIDENCE), "p": mcnemar_p(better, worse),
            "better": better, "worse": worse, "interval": "paired bootstrap",
            "resamples": bootstrap.get("resamples", RESAMPLES), "p_test": "McNemar exact"}


def wrong_indices(model_metrics: dict) -> list[int] | None:
    """Every test index a model got wrong, from its evaluation metrics (None when they do not list them all)."""
    if isinstance(model_metrics.get("misclassified_indices"), list):
        return model_metrics["misclassified_indices"]
    listed = model_metrics.get("misclassified") or []
    if len(listed) == model_metrics.get("misclassified_count"):  # an older evaluation.json with a short list
        return [m["index"] for m in listed]
    return None


def from_metrics(models: dict) -> dict | None:
    """The paired test from per-model evaluation metrics (evaluate_all's result, or evaluation.json's "models");
    None without a baseline, or when a model's wrong test indices are not all listed."""
    s, b = models.get("student"), models.get("baseline")
    if not s or not b or not s.get("n"):
        return None
    s_wrong, b_wrong = wrong_indices(s), wrong_indices(b)
    if s_wrong is None or b_wrong is None:
        return None
    return paired_gain(s_wrong, b_wrong, s["n"])


# ---- several seeds: a paired t-test over the per-seed gains ----------------------------------------------------

def t_abs_cdf(t: float, df: int) -> float:
    """P(|T| ≤ t) for Student's t with integer df (Abramowitz & Stegun 26.7.3–4, exact finite sums)."""
    if df < 1:
        raise ValueError("the t distribution needs df ≥ 1")
    theta = math.atan(abs(t) / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:  # odd: (2/π)(θ + sinθ (cosθ + 2/3 cos³θ + …))
        term, total = math.cos(theta), 0.0
        for j in range(1, (df - 1) // 2 + 1):
            total += term
            term *= c2 * (2 * j) / (2 * j + 1)
        return min(1.0, 2 / math.pi * (theta + s * total))
    term, total = 1.0, 0.0  # even: sinθ (1 + 1/2 cos²θ + 1·3/(2·4) cos⁴θ + …)
    for j in range(1, df // 2 + 1):
        total += term
        term *= c2 * (2 * j - 1) / (2 * j)
    return min(1.0, s * total)


def t_quantile(confidence: float, df: int) -> float:
    """The t such that P(|T| ≤ t) = confidence (bisection on t_abs_cdf)."""
    lo, hi = 0.0, 1.0
    while t_abs_cdf(hi, df) < confidence:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_abs_cdf(mid, df) < confidence else (lo, mid)
    return (lo + hi) / 2


def seed_test(gains: list, confidence: float = CONFIDENCE) -> dict | None:
    """Mean ± std of the per-seed gains and the paired t-test over seeds (None without any gain)."""
    vals = [float(g) for g in gains if g is not None and math.isfinite(float(g))]
    if not vals:
        return None
    n, mean = len(vals), statistics.fmean(vals)
    out = {"test": "seeds", "n": n, "gain": mean, "std": statistics.stdev(vals) if n > 1 else 0.0, "values": vals,
           "low": None, "high": None, "confidence": confidence, "p": None, "t": None, "p_test": "paired t-test"}
    if n < 2:
        return out
    se = out["std"] / math.sqrt(n)
    if se == 0:  # every seed gave the same gain: no spread to test against
        out.update(low=mean, high=mean, p=1.0 if mean == 0 else 0.0)
        return out
    t = mean / se
    half = t_quantile(confidence, n - 1) * se
    out.update(t=t, p=1.0 - t_abs_cdf(t, n - 1), low=mean - half, high=mean + half)
    return out


# ---- the words ----------------------------------------------------------------------------------------------

def usable(stats) -> dict | None:
    """stats when its figures are numbers (a sweep.json is read without a schema), else None."""
    if not isinstance(stats, dict) or not isinstance(stats.get("gain"), (int, float)):
        return None
    numbers = ("n", "low", "high", "p", "std", "confidence")
    ok = all(stats.get(k) is None or isinstance(stats[k], (int, float)) for k in numbers)
    return stats if ok else None


def verdict(stats: dict | None) -> str | None:
    """"helped", "hurt" or "noise"; None when nothing was tested (no baseline, one seed, an old run)."""
    stats = usable(stats)
    if not stats or stats.get("low") is None or stats.get("high") is None:
        return None
    significant = stats.get("p") is None or stats["p"] < 1 - stats.get("confidence", CONFIDENCE)
    if stats["low"] > 0 and significant:
        return "helped"
    if stats["high"] < 0 and significant:
        return "hurt"
    return "noise"


def pts(x: float, digits: int = 1) -> str:
    """A fraction as signed points: 0.021 → '+2.1', −0.014 → '−1.4'."""
    v = round(x * 100, digits)
    return f"{'+' if v >= 0 else MINUS}{abs(v):.{digits}f}"


def p_text(p: float) -> str:
    """'p = 0.002', 'p = 0.75', 'p < 0.001'."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def gain_sentence(stats: dict | None, gain: float | None = None, lead: bool = True) -> str:
    """The gain, its interval and what it means, in one line: every place that shows a KD gain says this.

    `stats` is a paired test (one run) or a seed test; `gain` is the bare number of a run without stats.
    lead=False leaves out the leading figure, for a place that shows it beside the words (a card's big value):
    "within noise (95 % CI −0.6…+1.1 pts, McNemar p = 0.75); run 3+ seeds to tell"."""
    stats = usable(stats)
    if not stats:
        if gain is None:
            return "no baseline (baseline.enabled = false), so no KD gain"
        return (f"{pts(gain)} pts, " if lead else "") + \
            "uncertainty not measured (an older run: `kdstudio eval RUN_DIR` measures it)"
    g, seeds = stats["gain"], stats.get("test") == "seeds"
    figure = (f"{pts(g)} ± {abs(stats.get('std') or 0) * 100:.1f} pts over {stats.get('n')} seeds" if seeds
              else f"{pts(g)} pts")
    said = verdict(stats)
    if said is None:
        return (f"{pts(g)} pts " if lead else "") + "from 1 completed seed; no spread to test it against"
    level = f"{stats.get('confidence', CONFIDENCE) * 100:g} % CI"
    band = f"{pts(stats['low'])}…{pts(stats['high'])}"
    test = f"{'paired t-test' if seeds else 'McNemar'} {p_text(stats['p'])}" if stats.get("p") is not None else ""
    more = "run more seeds to tell" if seeds else "run 3+ seeds to tell"
    if not lead:
        words = "within noise" if said == "noise" else f"distillation {said}"
        return f"{words} ({level} {band} pts{', ' + test if test else ''})" + (f"; {more}" if said == "noise" else "")
    if said == "noise":
        return f"{figure}, within noise ({level} {band} pts{', ' + test if test else ''}); {more}"
    return f"{figure} ({level} {band}{', ' + test if test else ''}): distillation {said}"


def gain_detail(stats: dict | None) -> str:
    """How the figures were obtained (the report's and the tooltips' second sentence); "" without stats."""
    stats = usable(stats)
    if not stats:
        return ""
    if stats.get("test") == "seeds":
        vals = ", ".join(pts(v, 2) for v in stats.get("values", []))
        return (f"Per-seed gains {vals} pts; mean ± sample std, paired t-test over {stats['n']} seeds "
                f"(each seed's student and baseline share its initial weights). Every seed is scored on the same "
                f"test split, so this is the spread over training seeds, not over test sets.")
    return (f"Paired over the same {stats.get('n') or 0:,} test samples: the student is right where the baseline is "
            f"wrong on {stats.get('better')}, the reverse on {stats.get('worse')}; interval from a paired bootstrap "
            f"({stats.get('resamples', RESAMPLES):,} resamples), p from McNemar's exact test.")
