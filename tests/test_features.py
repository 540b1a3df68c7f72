"""Feature matching: hooks by module path, adapters, pooling, clear errors, gradients, short distillations."""

import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdstudio.core import config, losses, models
from kdstudio.core.losses import matching as features
from kdstudio.core.errors import ConfigError


def cnn(width, depth=3, shape=(3, 16, 16), seed=0):
    torch.manual_seed(seed)
    return models.build("cnn", 10, shape, width=width, depth=depth)


def distill_cfg(method="kd", feature="", s_layers=(), t_layers=(), **params):
    d = config.Config().distill
    d.method, d.feature_method, d.feature_params = method, feature, params
    d.student_layers, d.teacher_layers = list(s_layers), list(t_layers)
    return d


X = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))


# ---- hand computations of the feature losses -----------------------------------------------------------------

def test_fitnet_and_at_by_hand():
    s = torch.tensor([[[[1.0, -2.0], [0.0, 3.0]]]])      # (1, 1, 2, 2)
    t = torch.tensor([[[[2.0, 0.0], [1.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]]])  # (1, 2, 2, 2)
    assert losses.create("fitnet", weight=2.0)(s, s + 1)["total"].item() == pytest.approx(2.0)
    qs = [1.0, 4.0, 0.0, 9.0]                             # mean over channels of x², per position
    qt = [(4 + 0) / 2, (0 + 1) / 2, (1 + 1) / 2, (1 + 0) / 2]
    ns, nt = math.sqrt(sum(v * v for v in qs)), math.sqrt(sum(v * v for v in qt))
    hand = sum((a / ns - b / nt) ** 2 for a, b in zip(qs, qt)) / 4
    terms = losses.create("at", weight=10.0)(s, t)
    assert terms["at"].item() == pytest.approx(hand, rel=1e-5)
    assert terms["total"].item() == pytest.approx(10 * hand, rel=1e-5)


def test_sp_and_pkt_by_hand():
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    t = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])

    def gram_rows(m):
        g = [[sum(a * b for a, b in zip(r1, r2)) for r2 in m] for r1 in m]
        return [[v / math.sqrt(sum(x * x for x in row)) for v in row] for row in g]

    gs, gt = gram_rows(s.tolist()), gram_rows(t.tolist())
    sp = sum((a - b) ** 2 for r1, r2 in zip(gs, gt) for a, b in zip(r1, r2)) / 9
    assert losses.create("sp", weight=1.0)(s, t)["sp"].item() == pytest.approx(sp, rel=1e-5)

    def kernel(m):
        n = [[v / math.sqrt(sum(x * x for x in r)) for v in r] for r in m]
        k = [[(sum(a * b for a, b in zip(r1, r2)) + 1) / 2 for r2 in n] for r1 in n]
        return [[v / sum(row) for v in row] for row in k]

    ps, pt = kernel(s.tolist()), kernel(t.tolist())
    pkt = sum(b * math.log(b / a) for r1, r2 in zip(ps, pt) for a, b in zip(r1, r2)) / 9
    assert losses.create("pkt", weight=1.0)(s, t)["pkt"].item() == pytest.approx(pkt, rel=1e-3, abs=1e-7)


def test_rkd_matches_the_reference_formulation():
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(5, 4, generator=g), torch.randn(5, 6, generator=g)

    def psi_d(e):
        d = torch.cdist(e, e)
        return d / d[d > 0].mean()

    def psi_a(e):  # Park et al.'s code: normalised differences, batched inner products, O(B²·D)
        diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
        return torch.bmm(diff, diff.transpose(1, 2))

    want_d = F.smooth_l1_loss(psi_d(s), psi_d(t))
    want_a = F.smooth_l1_loss(psi_a(s), psi_a(t))
    terms = losses.create("rkd", distance_weight=2.0, angle_weight=3.0)(s, t)
    assert terms["rkd_distance"].item() == pytest.approx(want_d.item(), rel=1e-4)
    assert terms["rkd_angle"].item() == pytest.approx(want_a.item(), rel=1e-4)
    assert terms["total"].item() == pytest.approx(2 * want_d.item() + 3 * want_a.item(), rel=1e-4)
    one = losses.create("rkd")(s[:1], t[:1])  # a last batch of one sample: zero, not NaN
    assert one["total"].item() == 0.0


# ---- layers, shapes, suggestions -----------------------------------------------------------------------------

def test_describe_layers_lists_paths_and_shapes_in_execution_order():
    rows = features.describe_layers(cnn(8), X)
    by = {r["name"]: r for r in rows}
    assert rows[0]["name"] == "features.0.0" and rows[-1]["name"] == "classifier"
    assert by["features.1"]["shape"] == (16, 8, 8) and by["pool"]["shape"] == (8 * 4,)
    assert set(by) == set(features.layer_names(cnn(8)))


def test_default_layers_are_last_feature_map_and_embedding():
    m = cnn(8)
    assert features.suggest_layer(m, X) == "pool"
    assert features.suggest_layer(m, X, four_d=True) == "features"
    mlp = models.build("mlp", 10, (3, 16, 16), width=32)
    assert features.suggest_layer(mlp, X) == "features"
    assert features.suggest_layer(mlp, X, four_d=True) == ""


def test_unknown_layer_lists_close_names():
    with pytest.raises(ConfigError) as e:
        losses.build_objective(distill_cfg("kd", "fitnet", ["feature.1"], ["features.2"]),
                               teacher=cnn(16), student=cnn(8), example_input=X)
    assert "student has no layer 'feature.1'" in str(e.value) and "features.1" in str(e.value)
    assert e.value.key == "distill.student_layers"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_scripted_teacher_has_no_accessible_layers():
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(cnn(16)), buf)
    buf.seek(0)
    teacher = torch.jit.load(buf)
    with pytest.raises(ConfigError, match="teacher is a TorchScript model.*cannot be hooked.*'fitnet'"):
        losses.build_objective(distill_cfg("kd", "fitnet"), teacher=teacher, student=cnn(8), example_input=X)
    # logit methods are fine with it
    assert not losses.build_objective(distill_cfg("kd"), teacher=teacher, student=cnn(8),
                                      example_input=X).uses_features


def test_at_on_flat_features_names_both_layers_and_shapes():
    mlp = models.build("mlp", 10, (3, 16, 16), width=32)
    with pytest.raises(ConfigError) as e:
        losses.build_objective(distill_cfg("at", "", ["features"], ["features.1"]), teacher=cnn(16),
                               student=mlp, example_input=X)
    msg = str(e.value)
    assert "'at' needs 4-D" in msg and "'features' (B, 32)" in msg and "'features.1' (B, 32, 8, 8)" in msg
    with pytest.raises(ConfigError, match="the student has no such layer"):  # automatic layers
        losses.build_objective(distill_cfg("at"), teacher=cnn(16), student=mlp, example_input=X)


class SharedReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.act, self.rnn = nn.Linear(768, 16), nn.Linear(16, 10), nn.ReLU(), nn.GRU(4, 4)

    def forward(self, x):
        return self.fc2(self.act(self.act(self.fc1(x.flatten(1)))))


@pytest.mark.parametrize("layer, match", [("act", "runs 2 times per forward pass"),
                                          ("rnn", "did not run in a forward pass")])
def test_ambiguous_or_unused_layers_are_rejected(layer, match):
    with pytest.raises(ConfigError, match=match):
        losses.build_objective(distill_cfg("kd", "fitnet", [layer], ["pool"]), teacher=cnn(16),
                               student=SharedReLU(), example_input=X)


def test_huge_adapter_is_refused():
    with pytest.raises(ConfigError, match="adapter of 25,005,000 weights"):
        features.PairMatcher("a", (5000,), "b", (5001,), losses.create("fitnet"))


# ---- adapters and pooling ------------------------------------------------------------------------------------

@pytest.mark.parametrize("s_layer, t_layer, adapter, out_shape", [
    ("features.1", "features.1", nn.Conv2d, (32, 8, 8)),     # channels 16 → 32 differ: 1×1 conv
    ("features.1", "features.2", nn.Conv2d, (64, 4, 4)),     # and 8×8 pooled to 4×4
    ("pool", "pool", nn.Linear, (64,)),                       # flat: linear
    ("features", "pool", nn.Linear, (64,)),                   # 4-D vs flat: spatial mean, then linear
])
def test_fitnet_pairs_get_adapters_and_pooling(s_layer, t_layer, adapter, out_shape):
    teacher, student = models.freeze(cnn(16)), cnn(8, seed=1)
    obj = losses.build_objective(distill_cfg("kd", "fitnet", [s_layer], [t_layer]), teacher=teacher,
                                 student=student, example_input=X)
    assert obj.uses_features and isinstance(obj.matcher.pairs[0].adapter, adapter)
    with torch.no_grad():
        t = teacher(X)
    s = student(X)
    ss, ts = obj.matcher()
    assert tuple(ss[0].shape[1:]) == tuple(ts[0].shape[1:]) == out_shape
    assert "fitnet" in obj(s, t, torch.zeros(8, dtype=torch.long))
    obj.remove()


def test_equal_sizes_need_no_adapter():
    obj = losses.build_objective(distill_cfg("fitnet"), teacher=cnn(8), student=cnn(8, seed=1), example_input=X)
    assert obj.matcher.pairs[0].adapter is None and list(obj.parameters()) == []
    assert obj.describe()[0] == "logit method: cross-entropy only"


# ---- gradients, teacher safety, hook lifecycle ---------------------------------------------------------------

@pytest.mark.parametrize("frozen", [True, False])
def test_gradients_reach_only_student_and_adapters(frozen):
    teacher, student = cnn(16), cnn(8, seed=1)
    if frozen:
        models.freeze(teacher)
    else:
        teacher.eval()
    obj = losses.build_objective(distill_cfg("kd", "fitnet", ["features.1"], ["features.2"]), teacher=teacher,
                                 student=student, example_input=X)
    adapters = list(obj.parameters())
    assert adapters
    opt = torch.optim.SGD(list(student.parameters()) + adapters, lr=0.1)
    t_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    s_before = [p.detach().clone() for p in student.parameters()]
    with torch.no_grad():
        t = teacher(X)
    terms = obj(student(X), t, torch.arange(8))
    terms["total"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapters)
    assert all(p.grad is not None for p in student.parameters())
    opt.step()
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in t_before.items())
    assert any(not torch.equal(a, b) for a, b in zip(s_before, student.parameters()))


def test_inference_mode_teacher_features_are_usable():
    teacher, student = models.freeze(cnn(16)), cnn(8, seed=1)
    obj = losses.build_objective(distill_cfg("kd", "at"), teacher=teacher, student=student, example_input=X)
    with torch.inference_mode():
        t = teacher(X)
    terms = obj(student(X), t.clone(), torch.arange(8))
    terms["total"].backward()
    assert torch.isfinite(terms["at"])


def test_stale_teacher_features_are_detected_and_mixup_may_call_twice():
    teacher, student = models.freeze(cnn(16)), cnn(8, seed=1)
    obj = losses.build_objective(distill_cfg("kd", "sp"), teacher=teacher, student=student, example_input=X)
    y = torch.arange(8)
    with pytest.raises(RuntimeError, match="No fresh features"):
        obj(student(X), torch.zeros(8, 10), y)              # the teacher never ran
    with torch.no_grad():
        t = teacher(X)
    out = student(X)
    a, b = obj(out, t, y), obj(out, t, y.flip(0))           # mixup: same forward pass, two label sets
    assert a["sp"].item() == b["sp"].item()
    (0.5 * a["total"] + 0.5 * b["total"]).backward()
    with pytest.raises(RuntimeError, match="teacher .*did not run since the last step"):
        obj(student(X), t, y)                              # e.g. the teacher-output cache left on


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_remove_unhooks_both_models():
    teacher, student = models.freeze(cnn(16)), cnn(8, seed=1)
    obj = losses.build_objective(distill_cfg("kd", "pkt"), teacher=teacher, student=student, example_input=X)
    assert any(m._forward_hooks for m in student.modules())
    obj.remove()
    obj.remove()
    assert not any(m._forward_hooks for m in list(student.modules()) + list(teacher.modules()))
    torch.jit.script(student)  # export paths work again


def test_multi_teacher_layers_are_reachable_by_path():
    ens = losses.MultiTeacher([models.freeze(cnn(16)), models.freeze(cnn(8, seed=2))], temperature=4.0)
    student = cnn(8, seed=1)
    obj = losses.build_objective(distill_cfg("kd", "fitnet", ["features.2"], ["teachers.0.features.2"]),
                                 teacher=ens, student=student, example_input=X)
    assert "teachers.0.features.2' (B, 64, 4, 4)" in obj.describe()[-1]
    with torch.no_grad():
        t = ens(X)
    terms = obj(student(X), t, torch.arange(8))
    assert torch.isfinite(terms["total"]) and terms["fitnet"] > 0


# ---- short distillations with feature methods ----------------------------------------------------------------

@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(5)
    templates = F.interpolate(torch.randn(4, 3, 4, 4, generator=g), size=(12, 12), mode="bilinear")
    y = torch.arange(256) % 4
    x = templates[y] + 0.8 * torch.randn(256, 3, 12, 12, generator=g)
    torch.manual_seed(0)
    teacher = models.build("cnn", 4, (3, 12, 12), width=16, depth=3)
    opt = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    for i in range(30):
        idx = torch.randint(0, 256, (32,))
        loss = F.cross_entropy(teacher(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return models.freeze(teacher), x, y


@pytest.mark.parametrize("feature, logit", [("fitnet", "kd"), ("at", "kd"), ("rkd", "dist"), ("sp", "kd"),
                                            ("pkt", "soft_mse")])
def test_each_feature_method_distils_without_nan(feature, logit, images):
    teacher, x, y = images
    torch.manual_seed(1)
    student = models.build("cnn", 4, (3, 12, 12), width=4, depth=2)
    obj = losses.build_objective(distill_cfg(logit, feature), teacher=teacher, student=student,
                                 example_input=x[:32])
    opt = torch.optim.Adam(list(student.parameters()) + list(obj.parameters()), lr=1e-2)
    names = [k for k in losses.create(feature)(torch.randn(2, 4, 2, 2), torch.randn(2, 4, 2, 2)) if k != "total"]
    history = []
    for step in range(25):
        idx = torch.randint(0, 256, (32,))
        with torch.no_grad():
            t = teacher(x[idx])
        terms = obj(student(x[idx]), t, y[idx], epoch=step)
        assert all(torch.isfinite(v) for v in terms.values()), terms
        assert set(names) <= set(terms)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        history.append(sum(terms[k].item() for k in names))
    assert sum(history[-5:]) < sum(history[:5]), history
    obj.remove()


def test_a_training_step_lets_go_of_the_hooked_features(tmp_path):
    from kdstudio.core import events
    from kdstudio.core.train.loop import StageRunner, StageSpec
    teacher, student = cnn(16), cnn(8, seed=1)
    models.freeze(teacher)
    obj = losses.build_objective(distill_cfg("kd", "fitnet", ["features.1"], ["features.2"]), teacher=teacher,
                                 student=student, example_input=X)
    spec = StageSpec("distill", student, obj, epochs=1, lr=0.01, batch_size=4, teacher=teacher,
                     cache_teacher=False)
    y = torch.arange(8) % 10
    StageRunner(spec, x=X, y=y, x_val=X, y_val=y, device=torch.device("cpu"), amp_dtype=None,
                emit=lambda *a, **k: None, control=events.RunControl(), checkpoint_path=tmp_path / "c.pt",
                seed=0).run()
    # nothing captured during training is still held (the last step's maps would otherwise stay alive)
    assert not obj.matcher.student_hooks.out and not obj.matcher.teacher_hooks.out
