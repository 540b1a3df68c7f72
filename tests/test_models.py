"""The model zoo: every arch builds and runs, published sizes, shrink, hub detection, custom files, summaries."""

import re

import pytest
import torch

from kdstudio.core import models, trust
from kdstudio.core.config import Config
from kdstudio.core.errors import ConfigError
from kdstudio.core.models import hub

ZOO = ["mlp", "cnn", "mobilenetv2", "resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56",
       "resnet110", "resnet8x4", "resnet32x4", "wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2"]


def test_zoo_lists_every_arch_of_issue_5():
    assert set(ZOO) <= set(models.available())
    names = {row["name"]: row for row in models.catalog()}
    assert names["resnet32x4"]["family"] == "resnet" and names["wrn_40_2"]["width"] == 32


@pytest.mark.parametrize("arch", ZOO)
def test_each_arch_runs_a_cifar_batch(arch):
    torch.manual_seed(0)
    m = models.build(arch, 10, (3, 32, 32)).eval()
    with torch.no_grad():
        out = m(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ["resnet8", "wrn_16_1", "mobilenetv2", "resnet8x4"])
def test_convnets_take_small_grey_images(arch):
    m = models.build(arch, 7, (1, 8, 8)).eval()
    assert m(torch.randn(2, 1, 8, 8)).shape == (2, 7)


@pytest.mark.parametrize("arch,millions", [("resnet20", 0.28), ("resnet56", 0.86), ("resnet110", 1.73),
                                           ("resnet32x4", 7.43), ("wrn_40_2", 2.25), ("wrn_16_2", 0.70)])
def test_parameter_counts_match_the_published_cifar100_nets(arch, millions):
    m = models.build(arch, 100, (3, 32, 32))
    assert models.count_params(m) / 1e6 == pytest.approx(millions, rel=0.03)


def test_convnet_on_flat_features_names_the_arch():
    with pytest.raises(ConfigError, match="'resnet20' needs image inputs"):
        models.build("resnet20", 3, (12,))


def test_unknown_arch_suggests_the_nearest():
    with pytest.raises(ConfigError, match="Did you mean 'resnet32'"):
        models.build("resnet23", 10, (3, 32, 32))


def test_shrink_keeps_the_family_and_rounds_depth():
    assert models.shrink_spec("resnet32x4", 0.5, 0.5) == ("resnet32x4", 32, 14)
    assert models.shrink_spec("resnet56", 1.0, 0.5) == ("resnet56", 16, 26)
    arch, w, d = models.shrink_spec("wrn_40_2", 0.5, 1.0)
    half = models.build(arch, 10, (3, 32, 32), w, d)
    assert models.count_params(half) == models.count_params(models.build("wrn_40_1", 10, (3, 32, 32)))
    assert models.shrink_spec("cnn", 1.0, 1.0, 8, 2) == ("cnn", 8, 2)


def test_shrink_refuses_archs_without_knobs(tmp_path):
    f = tmp_path / "net.py"
    f.write_text("import torch\ndef make(num_classes, input_shape):\n    return torch.nn.Linear(4, num_classes)\n")
    with pytest.raises(ConfigError, match="no width/depth knobs"):
        models.shrink_spec(f"{f}:make", 0.5)


def test_student_teacher_family_at_a_multiplier():
    cfg = Config()
    cfg.teacher.arch, cfg.teacher.depth = "resnet32", 0
    cfg.student.arch, cfg.student.width_mult, cfg.student.depth_mult = "teacher", 0.5, 0.25
    assert models.student_spec(cfg) == ("resnet32", 8, 8)
    s = models.build_student(cfg, 10, (3, 32, 32))
    t = models.build("resnet32", 10, (3, 32, 32))
    assert models.count_params(s) < models.count_params(t) / 10


def test_hub_names_only_when_the_package_imports(monkeypatch):
    hub._package.cache_clear()
    hub.names.cache_clear()

    def broken(name, *a, **k):
        raise RuntimeError("operator torchvision::nms does not exist")
    monkeypatch.setattr(hub.importlib, "import_module", broken)
    try:
        assert hub.installed() == [] and not any(":" in n for n in models.available(include_hub=True))
        with pytest.raises(ConfigError, match="needs the 'torchvision' package"):
            models.build("torchvision:resnet18", 10, (3, 32, 32))
    finally:
        hub._package.cache_clear()
        hub.names.cache_clear()


def test_misspelt_hub_model_names_the_nearest(monkeypatch):
    class FakeTorchvision:
        @staticmethod
        def list_models():
            return ["resnet18", "resnet34"]
    hub.names.cache_clear()
    monkeypatch.setattr(hub, "_package", lambda name: FakeTorchvision)
    try:
        with pytest.raises(ConfigError, match=re.escape("torchvision has no image-classification model named "
                                                        "'resnet19'; the closest are 'torchvision:resnet18'")):
            models.build("torchvision:resnet19", 10, (3, 32, 32))
        with pytest.raises(ConfigError, match=re.escape("model named 'vit'; torchvision.models.list_models() "
                                                        "lists its models.")):
            models.build("torchvision:vit", 10, (3, 32, 32))
    finally:
        hub.names.cache_clear()


def test_custom_factory_from_a_user_file(tmp_path):
    f = tmp_path / "my_net.py"
    f.write_text("import torch\n"
                 "def make(num_classes, input_shape):\n"
                 "    return torch.nn.Sequential(torch.nn.Flatten(),\n"
                 "                               torch.nn.Linear(int(torch.tensor(input_shape).prod()), num_classes))\n"
                 "def not_a_model():\n    return 3\n")
    trust.grant(f)  # a file this test wrote (tests/test_trust.py covers the refusal of untrusted files)
    m = models.build(f"{f}:make", 4, (1, 8, 8))
    assert m(torch.randn(2, 1, 8, 8)).shape == (2, 4)
    with pytest.raises(ConfigError, match="has no function or class named 'nope'; it defines make"):
        models.build(f"{f}:nope", 4, (1, 8, 8))
    with pytest.raises(ConfigError, match="named 'maek'; it defines make, not_a_model. Did you mean 'make'"):
        models.build(f"{f}:maek", 4, (1, 8, 8))
    with pytest.raises(ConfigError, match="returned int, not a torch.nn.Module"):
        models.build(f"{f}:not_a_model", 4, (1, 8, 8))
    with pytest.raises(ConfigError, match="does not exist"):
        models.build(f"{tmp_path / 'missing.py'}:make", 4, (1, 8, 8))
    bad = tmp_path / "bad.py"
    bad.write_text("raise ValueError('boom')\n")
    trust.grant(bad)
    with pytest.raises(ConfigError, match="Running .* failed with ValueError: boom"):
        models.build(f"{bad}:make", 4, (1, 8, 8))


def test_summary_is_plain_data_with_shapes():
    m = models.build("resnet8", 10, (3, 32, 32))
    info = models.summary(m, (3, 32, 32))
    assert info["output_shape"] == [10] and info["input_shape"] == [3, 32, 32]
    assert info["params"] == models.count_params(m) == info["trainable_params"]
    rows = {r["name"]: r for r in info["layers"]}
    assert rows["conv1"]["output_shape"] == [16, 32, 32] and rows["conv1"]["type"] == "Conv2d"
    assert rows["fc"]["params"] == 64 * 10 + 10
    assert m.training  # mode restored
    assert "→ output 10" in models.format_summary(info)


def test_summary_of_torchscript_lists_layers_and_output():
    m = torch.jit.script(models.build("cnn", 5, (1, 8, 8), 4, 2))
    info = models.summary(m, (1, 8, 8))
    assert info["output_shape"] == [5] and info["error"] is None
    assert any(r["type"] == "Conv2d" for r in info["layers"])


def test_summary_reports_a_failing_forward():
    m = models.build("cnn", 5, (3, 8, 8))
    info = models.summary(m, (1, 8, 8))
    assert info["output_shape"] is None and "RuntimeError" in info["error"]
