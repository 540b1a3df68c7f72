"""The loss library: every method against a hand computation, the registry, multi-teacher, bad input, training."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdstudio.core import config, losses, models
from kdstudio.core.errors import ConfigError

# ---- plain-Python helpers (the "hand computation") ---------------------------------------------------------


def softmax(row, T=1.0):
    e = [math.exp(v / T) for v in row]
    return [v / sum(e) for v in e]


def ce(rows, ys):
    return sum(-math.log(softmax(r)[y]) for r, y in zip(rows, ys)) / len(rows)


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q) if a > 0)


def pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return num / (math.sqrt(sum((x - ma) ** 2 for x in a)) * math.sqrt(sum((y - mb) ** 2 for y in b)))


S = [[1.0, 2.0, 0.5, -0.5], [0.0, -1.0, 3.0, 1.0], [0.3, 0.2, 0.1, 2.0]]
T_ = [[2.0, 1.0, 0.0, 0.5], [1.0, 0.0, 2.0, -1.0], [0.0, 1.5, 0.5, 1.0]]
Y = [1, 2, 3]


def tensors():
    return torch.tensor(S), torch.tensor(T_), torch.tensor(Y)


# ---- the seed document's worked example -------------------------------------------------------------------

def test_soft_mse_reproduces_the_seed_documents_5x2_example():
    # L = 1/N Σ_i Σ_j (y_ij − softmax(φ_i)_j)², softmax applied to the given φ rows, as the formula is written.
    y = [[0.6, 0.4], [0.7, 0.3], [0.5, 0.5], [0.8, 0.2], [0.4, 0.6]]
    phi = [[0.55, 0.45], [0.68, 0.32], [0.52, 0.48], [0.82, 0.18], [0.43, 0.57]]
    hand = sum(sum((a - b) ** 2 for a, b in zip(yi, softmax(pi))) for yi, pi in zip(y, phi)) / 5
    assert hand == pytest.approx(0.0173476, abs=1e-7)
    loss = losses.create("soft_mse", temperature=1.0, alpha=1.0)
    # the teacher gives probabilities y: logits log(y) have softmax exactly y
    terms = loss(torch.tensor(phi), torch.tensor(y).log(), torch.tensor([0, 0, 0, 0, 1]))
    assert terms["soft_mse"].item() == pytest.approx(hand, rel=1e-6)
    assert terms["total"].item() == pytest.approx(hand, rel=1e-6)


def test_soft_mse_at_temperature_mixes_with_ce():
    s, t, y = tensors()
    T, alpha = 2.0, 0.6
    hand = sum(sum((a - b) ** 2 for a, b in zip(softmax(tr, T), softmax(sr, T))) for sr, tr in zip(S, T_)) / 3
    terms = losses.create("soft_mse", temperature=T, alpha=alpha)(s, t, y)
    assert terms["soft_mse"].item() == pytest.approx(hand, rel=1e-5)
    assert terms["ce"].item() == pytest.approx(ce(S, Y), rel=1e-5)
    assert terms["total"].item() == pytest.approx(alpha * hand + (1 - alpha) * ce(S, Y), rel=1e-5)


def test_kd_at_temperature_three():
    s, t, y = tensors()
    hand = sum(kl(softmax(tr, 3.0), softmax(sr, 3.0)) for sr, tr in zip(S, T_)) / 3 * 9
    terms = losses.create("kd", temperature=3.0, alpha=0.5)(s, t, y)
    assert terms["kd"].item() == pytest.approx(hand, rel=1e-5)
    assert terms["total"].item() == pytest.approx(0.5 * hand + 0.5 * ce(S, Y), rel=1e-5)


def test_logit_mse():
    s, t, y = tensors()
    hand = sum((a - b) ** 2 for sr, tr in zip(S, T_) for a, b in zip(sr, tr)) / 12
    terms = losses.create("logit_mse", alpha=0.8)(s, t, y)
    assert terms["logit_mse"].item() == pytest.approx(hand, rel=1e-6)
    assert terms["total"].item() == pytest.approx(0.8 * hand + 0.2 * ce(S, Y), rel=1e-5)


def test_dkd_decouples_target_and_non_target_and_warms_up():
    s, t, y = tensors()
    T, a, b, warm = 2.0, 1.0, 8.0, 10
    tckd = nckd = 0.0
    for sr, tr, yi in zip(S, T_, Y):
        ps, pt = softmax(sr, T), softmax(tr, T)
        tckd += kl([pt[yi], 1 - pt[yi]], [ps[yi], 1 - ps[yi]])
        qs = softmax([v for j, v in enumerate(sr) if j != yi], T)
        qt = softmax([v for j, v in enumerate(tr) if j != yi], T)
        nckd += kl(qt, qs)
    tckd, nckd = tckd / 3 * T * T, nckd / 3 * T * T
    loss = losses.create("dkd", temperature=T, alpha=a, beta=b, warmup_epochs=warm)
    full = loss(s, t, y, epoch=25)
    assert full["tckd"].item() == pytest.approx(tckd, rel=1e-5)
    assert full["nckd"].item() == pytest.approx(nckd, rel=1e-5)
    assert full["total"].item() == pytest.approx(ce(S, Y) + a * tckd + b * nckd, rel=1e-5)
    # `epoch` is the engine's 0-based index: the first epoch (0) already distils with weight 1/warm
    first = loss(s, t, y, epoch=0)["total"].item()
    assert first == pytest.approx(ce(S, Y) + (a * tckd + b * nckd) / warm, rel=1e-5)
    half = loss(s, t, y, epoch=4)["total"].item()  # the fifth epoch of ten
    assert half == pytest.approx(ce(S, Y) + 0.5 * (a * tckd + b * nckd), rel=1e-5)


def test_dist_inter_and_intra_pearson():
    s, t, y = tensors()
    T, beta, gamma = 2.0, 1.0, 2.0
    ps = [softmax(r, T) for r in S]
    pt = [softmax(r, T) for r in T_]
    inter = (1 - sum(pearson(a, b) for a, b in zip(ps, pt)) / 3) * T * T
    cols = lambda m: [list(c) for c in zip(*m)]  # noqa: E731
    intra = (1 - sum(pearson(a, b) for a, b in zip(cols(ps), cols(pt))) / 4) * T * T
    terms = losses.create("dist", temperature=T, beta=beta, gamma=gamma)(s, t, y)
    assert terms["dist_inter"].item() == pytest.approx(inter, rel=1e-4)
    assert terms["dist_intra"].item() == pytest.approx(intra, rel=1e-4)
    assert terms["total"].item() == pytest.approx(ce(S, Y) + beta * inter + gamma * intra, rel=1e-4)


@pytest.mark.parametrize("name", ["kd", "soft_mse", "logit_mse", "dkd", "dist"])
def test_student_equal_to_teacher_leaves_only_ce(name):
    x = torch.randn(6, 5)
    y = torch.randint(0, 5, (6,))
    terms = losses.create(name)(x, x.clone(), y, epoch=100)
    assert set(terms) >= {"total", "ce"}
    for k, v in terms.items():
        if k not in ("total", "ce"):
            assert v.item() == pytest.approx(0.0, abs=1e-3 if name == "dist" else 1e-5), k  # DIST: eps 1e-8


def test_logit_losses_stay_fp32_under_bf16_inputs():
    s, t, y = tensors()
    for name in losses.logit_methods():
        terms = losses.create(name)(s.bfloat16(), t.bfloat16(), y, epoch=1)
        assert all(v.dtype == torch.float32 for v in terms.values()), name


# ---- registry ------------------------------------------------------------------------------------------------

def test_available_lists_every_method_with_params_defaults_doc_and_kind():
    av = losses.available()
    assert set(av) == {"kd", "soft_mse", "logit_mse", "dkd", "dist", "fitnet", "at", "rkd", "sp", "pkt"}
    assert av["dkd"]["params"] == {"temperature": 4.0, "alpha": 1.0, "beta": 8.0, "warmup_epochs": 20}
    assert av["rkd"]["params"] == {"distance_weight": 25.0, "angle_weight": 50.0}
    for name, info in av.items():
        assert info["doc"] and info["kind"] in ("logit", "feature"), name
        assert "Paper" in losses.REGISTRY[name].__doc__ or "Source" in losses.REGISTRY[name].__doc__
    assert losses.feature_methods() == ["fitnet", "at", "rkd", "sp", "pkt"]


def test_from_config_passes_temperature_alpha_and_params():
    cfg = config.Config()
    cfg.distill.method, cfg.distill.temperature, cfg.distill.params = "dkd", 2.0, {"beta": 3.0}
    m = losses.from_config(cfg.distill)
    assert (m.temperature, m.alpha, m.beta) == (2.0, 0.9, 3.0)


# ---- multi-teacher -------------------------------------------------------------------------------------------

def test_multi_teacher_softmax_is_the_weighted_average_of_softened_outputs():
    torch.manual_seed(0)
    t1, t2 = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    T = 3.0
    ens = losses.MultiTeacher([t1, t2], weights=[1.0, 3.0], temperature=T)
    with torch.no_grad():
        z = ens(x)
        want = 0.25 * F.softmax(t1(x) / T, 1) + 0.75 * F.softmax(t2(x) / T, 1)
    assert torch.allclose(F.softmax(z / T, 1), want, atol=1e-6)
    # KD from the ensemble equals the KL to the averaged distribution
    s = torch.randn(5, 3)
    kd = losses.create("kd", temperature=T, alpha=1.0)(s, z, torch.zeros(5, dtype=torch.long))["kd"]
    hand = F.kl_div(F.log_softmax(s / T, 1), want, reduction="batchmean") * T * T
    assert kd.item() == pytest.approx(hand.item(), rel=1e-5)
    assert losses.ensemble([t1]) is t1
    assert "teachers.1" in dict(ens.named_modules())


@pytest.mark.parametrize("weights, match", [([1.0], "one weight per teacher"), ([1.0, -1.0], "≥ 0")])
def test_multi_teacher_bad_weights(weights, match):
    with pytest.raises(ConfigError, match=match):
        losses.MultiTeacher([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)], weights=weights)


# ---- bad input -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("T", [0.0, -1.0, float("nan")])
def test_temperature_must_be_positive(T):
    with pytest.raises(ConfigError, match="temperature must be above 0"):
        losses.create("kd", temperature=T)
    cfg = config.Config()
    cfg.distill.temperature = T
    keys = [k for k, _ in config.problems(cfg)]
    assert "distill.temperature" in keys


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_must_be_in_unit_interval(alpha):
    with pytest.raises(ConfigError, match="between 0 and 1"):
        losses.create("soft_mse", alpha=alpha)
    cfg = config.Config()
    cfg.distill.alpha = alpha
    assert any(k == "distill.alpha" for k, _ in config.problems(cfg))


def test_unknown_method_names_the_nearest():
    with pytest.raises(ConfigError, match="Did you mean 'dkd'"):
        losses.create("dkdd")
    cfg = config.Config()
    cfg.distill.method = "fitnets"
    assert config.problems(cfg) == [("distill.method",
                                     "Unknown distillation method 'fitnets'. Did you mean 'fitnet'?")]


def test_unknown_parameter_lists_the_methods_parameters():
    cfg = config.Config()
    cfg.distill.method, cfg.distill.params = "dkd", {"betta": 2.0}
    [(key, msg)] = config.problems(cfg)
    assert key == "distill.params" and "did you mean 'beta'" in msg and "warmup_epochs" in msg


@pytest.mark.parametrize("method, feature", [("dist", ""), ("rkd", ""), ("kd", "rkd")])
def test_batch_size_one_with_relation_methods(method, feature):
    cfg = config.Config()
    cfg.data.batch_size, cfg.distill.method, cfg.distill.feature_method = 1, method, feature
    probs = config.problems(cfg)
    assert len(probs) == 1 and probs[0][0] == "data.batch_size"
    assert "at least 2" in probs[0][1]
    cfg.data.batch_size = 2
    assert config.problems(cfg) == []


def test_feature_method_keys_are_checked():
    cfg = config.Config()
    cfg.distill.feature_method = "dkd"
    assert "is a logit method" in config.problems(cfg)[0][1]
    cfg.distill.feature_method = "fitnett"
    assert "Did you mean 'fitnet'" in config.problems(cfg)[0][1]
    cfg.distill.method, cfg.distill.feature_method = "at", "fitnet"
    assert "already a feature method" in config.problems(cfg)[0][1]
    cfg.distill.method, cfg.distill.feature_method = "kd", "fitnet"
    cfg.distill.student_layers, cfg.distill.teacher_layers = ["a", "b"], ["c"]
    assert config.problems(cfg)[0][0] == "distill.teacher_layers"
    cfg.distill.feature_method, cfg.distill.teacher_layers = "", ["c", "d"]
    assert "uses no features" in config.problems(cfg)[0][1]


def test_feature_keys_round_trip_through_toml():
    cfg = config.Config()
    cfg.distill.feature_method, cfg.distill.feature_params = "at", {"weight": 500.0}
    cfg.distill.student_layers, cfg.distill.teacher_layers = ["features.1"], ["features.2"]
    back = config.loads(config.dumps(cfg))
    assert back.to_dict()["distill"] == cfg.to_dict()["distill"]
    assert config.problems(back) == []


# ---- short distillations on digits ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_teacher():
    from kdstudio.core.data.digits import load_digits_arrays
    x, y = load_digits_arrays()
    torch.manual_seed(0)
    perm = torch.randperm(len(y))
    x, y = x[perm], y[perm]
    xtr, ytr, xva, yva = x[:1200], y[:1200], x[1200:], y[1200:]
    teacher = models.build("mlp", 10, (1, 8, 8), width=128)
    opt = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    for i in range(100):
        idx = torch.randint(0, 1200, (64,))
        loss = F.cross_entropy(teacher(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    models.freeze(teacher)
    return teacher, xtr, ytr, xva, yva


@pytest.mark.parametrize("name", ["kd", "soft_mse", "logit_mse", "dkd", "dist"])
def test_each_logit_method_distils_digits_without_nan(name, digits_teacher):
    teacher, xtr, ytr, xva, yva = digits_teacher
    torch.manual_seed(1)
    student = models.build("mlp", 10, (1, 8, 8), width=32, depth=1)
    params = {"warmup_epochs": 2} if name == "dkd" else {}
    loss = losses.create(name, **params)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in teacher.parameters()]
    first = last = None
    for step in range(120):
        idx = torch.randint(0, 1200, (64,))
        with torch.no_grad():
            t = teacher(xtr[idx])
        terms = loss(student(xtr[idx]), t, ytr[idx], epoch=step // 30)
        assert all(torch.isfinite(v) for v in terms.values()), terms
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        first = terms["ce"].item() if first is None else first
        last = terms["ce"].item()
    assert last < first
    with torch.no_grad():
        acc = (student(xva).argmax(1) == yva).float().mean().item()
    assert acc > 0.8, acc
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
