"""torchvision and timm models: teachers from the user's weights files, students at the data's classes and at a
fraction of the width, feature layers by module path, export parity, and one sentence for each bad input.

Tiny sizes throughout (32×32 synthetic images, a few dozen samples, one epoch); skipped where torchvision and timm
do not import (the CPU-only venv), run wherever they do.
"""

import re

import pytest
import torch

from kdstudio.core import models
from kdstudio.core.errors import ConfigError, KDError
from kdstudio.core.models import heads, hub
from kdstudio.core.models.teacher_io import info, load_teacher
from tests.helpers import tiny_config

if hub.installed() != ["torchvision", "timm"]:
    pytest.skip("torchvision and timm do not both import here", allow_module_level=True)

import timm  # noqa: E402
import torchvision  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

CLASSES = 4


def _cfg(**more):
    """Synthetic 3×32×32 images in CLASSES classes, a hub teacher from a file, one short epoch."""
    base = {"data.source": "synthetic", "data.synthetic_samples": 48, "data.synthetic_classes": CLASSES,
            "data.synthetic_channels": 3, "data.synthetic_size": 32,
            "data.batch_size": 8, "teacher.source": "file", "teacher.width": 0, "teacher.depth": 0,
            "teacher.skip_sanity_check": True, "student.width": 0, "student.depth": 0, "distill.epochs": 1,
            "baseline.enabled": False, "export.formats": [], "evaluate.latency_repeats": 0}
    return tiny_config(**{**base, **more})


@pytest.fixture(scope="module")
def bundle():
    from kdstudio.core.data import load_data
    return load_data(_cfg())


def _library(arch: str, num_classes: int = CLASSES, **kwargs):
    prefix, name = arch.split(":", 1)
    torch.manual_seed(0)
    if prefix == "torchvision":
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs).eval()
    return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs).eval()


def _save(model, path):
    """The model's weights as a user would save them: torch.save(state_dict) or safetensors' save_file."""
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(sd, path) if path.suffix in (".pt", ".pth") else save_file(sd, str(path))
    return path


@pytest.mark.parametrize("arch, suffix", [("torchvision:resnet18", ".pt"), ("timm:resnet18", ".safetensors"),
                                          ("torchvision:mobilenet_v3_small", ".safetensors")])
def test_teacher_file_loads_into_the_library_model(tmp_path, bundle, arch, suffix):
    lib = _library(arch)
    path = _save(lib, tmp_path / f"teacher{suffix}")
    teacher = load_teacher(_cfg(**{"teacher.arch": arch, "teacher.path": str(path)}), bundle, torch.device("cpu"))
    assert models.count_params(teacher) == models.count_params(lib)
    x = bundle.x_test[:4]
    with torch.no_grad():
        assert (teacher(x) - lib(x)).abs().max().item() <= 1e-5
    assert info(teacher)["arch"] == arch


@pytest.mark.parametrize("arch, head", [("torchvision:resnet18", "fc"), ("torchvision:mobilenet_v3_small",
                                                                          "classifier.3"),
                                        ("torchvision:efficientnet_b0", "classifier.1"),
                                        ("torchvision:squeezenet1_1", "classifier.1"), ("timm:resnet18", "fc"),
                                        ("timm:convnext_atto", "head.fc"), ("timm:mobilenetv3_small_050",
                                                                            "classifier")])
def test_head_is_found_in_each_family(arch, head):
    model = models.build(arch, CLASSES, (3, 32, 32))
    assert heads.head_name(model) == head
    assert heads.head_outputs(model.state_dict(), head) == CLASSES


@pytest.mark.parametrize("arch", ["torchvision:resnet18", "timm:convnext_atto"])
def test_a_head_of_another_size_is_refused_or_replaced_for_fine_tuning(tmp_path, bundle, arch):
    path = _save(_library(arch, num_classes=7), tmp_path / "seven.pt")
    cfg = _cfg(**{"teacher.arch": arch, "teacher.path": str(path)})
    with pytest.raises(KDError, match=f"has 7 outputs but the data has {CLASSES} classes; set data.class_names"):
        load_teacher(cfg, bundle, torch.device("cpu"))
    cfg.teacher.finetune_layers = 1
    warnings = []
    teacher = load_teacher(cfg, bundle, torch.device("cpu"), warn=warnings.append)
    head = heads.head_name(teacher)
    assert info(teacher)["new_head"] == head and teacher.get_submodule(head).out_features == CLASSES
    assert teacher(bundle.x_test[:2]).shape == (2, CLASSES) and any("replaced" in w for w in warnings)


def test_weights_of_another_architecture_name_the_keys(tmp_path, bundle):
    cfg = _cfg(**{"teacher.arch": "torchvision:resnet18"})
    cfg.teacher.path = str(_save(_library("torchvision:resnet34"), tmp_path / "r34.pt"))
    with pytest.raises(KDError, match=r"do not fit architecture 'torchvision:resnet18': the file has \d+ keys the "
                                      r"model does not have \(layer1\.2\.conv1\.weight.*probably this family at "
                                      r"another depth or width; check teacher\.arch"):
        load_teacher(cfg, bundle, torch.device("cpu"))
    cfg.teacher.path = str(_save(_library("torchvision:mobilenet_v2"), tmp_path / "mnv2.safetensors"))
    with pytest.raises(KDError, match=r"none of the model's 122 keys is in the file \(conv1\.weight, bn1\.weight, "
                                      r"bn1\.bias, …\) and it has \d+ keys the model does not have \((classifier|features)\.\d.*top-level names "
                                      r"are (features, classifier|classifier, features); check teacher\.arch"):
        load_teacher(cfg, bundle, torch.device("cpu"))


@pytest.mark.parametrize("arch", ["torchvision:mobilenet_v3_small", "timm:resnet18", "torchvision:resnet18"])
def test_student_from_the_library_at_the_data_classes(arch):
    cfg = _cfg(**{"student.arch": arch})
    student = models.build_student(cfg, CLASSES, (3, 32, 32))
    assert models.count_params(student) == models.count_params(_library(arch))
    assert student(torch.zeros(2, 3, 32, 32)).shape == (2, CLASSES)


@pytest.mark.parametrize("teacher, library_kwargs", [
    ("torchvision:mobilenet_v2", {"width_mult": 0.5}),
    ("torchvision:mobilenet_v3_small", {"width_mult": 0.5}),
    ("timm:resnet18", {"channels": (32, 64, 128, 256)}),
    ("timm:convnext_atto", {"dims": (20, 40, 80, 160)})])
def test_student_is_the_teacher_family_at_half_width(teacher, library_kwargs):
    cfg = _cfg(**{"teacher.arch": teacher, "student.arch": "teacher", "student.width_mult": 0.5})
    assert models.student_spec(cfg) == (teacher, 50, 0)
    student = models.build_student(cfg, CLASSES, (3, 32, 32))
    assert models.count_params(student) == models.count_params(_library(teacher, **library_kwargs))
    assert models.count_params(student) < models.count_params(_library(teacher)) / 2


@pytest.mark.parametrize("arch, says", [
    ("torchvision:resnet18", "one of torchvision's models with a width knob (mobilenet_v2"),
    ("timm:mobilenetv3_small_100", "timm names its other widths instead: set student.arch to one of "
                                   "timm:mobilenetv3_small_050, timm:mobilenetv3_small_075"),
    ("timm:efficientnet_b0", "a timm ResNet or ConvNeXt, which take a width"),
    ("torchvision:shufflenet_v2_x1_0", "torchvision names its other widths instead: set student.arch to one of "
                                       "torchvision:shufflenet_v2_x0_5, torchvision:shufflenet_v2_x1_5")])
def test_a_width_asked_of_a_model_without_a_knob_is_one_sentence(arch, says):
    cfg = _cfg(**{"teacher.arch": arch, "student.arch": "teacher", "student.width_mult": 0.5})
    with pytest.raises(ConfigError, match=re.escape(f"Architecture '{arch}' has no width knob")) as e:
        models.build_student(cfg, CLASSES, (3, 32, 32))
    assert says in str(e.value)
    cfg.student.width_mult, cfg.student.depth_mult = 1.0, 0.5
    with pytest.raises(ConfigError, match="has no depth knob here, so depth_mult = 0.5 cannot be applied"):
        models.build_student(cfg, CLASSES, (3, 32, 32))
    with pytest.raises(ConfigError, match=re.escape(f"Architecture '{arch}' has no width knob")):
        models.build(arch, CLASSES, (3, 32, 32), 50)  # teacher.width = 50 on such a model
    with pytest.raises(ConfigError, match="has no depth knob here, so a depth of 2 cannot be applied"):
        models.build(arch, CLASSES, (3, 32, 32), 0, 2)


def test_feature_hooks_capture_named_layers_of_hub_models():
    from kdstudio.core.losses import matching
    x = torch.zeros(2, 3, 32, 32)
    resnet, mobilenet = models.build("torchvision:resnet18", CLASSES, (3, 32, 32)), \
        models.build("torchvision:mobilenet_v3_small", CLASSES, (3, 32, 32))
    rows = {r["name"]: r for r in matching.describe_layers(resnet, x)}
    assert rows["layer3"]["shape"] == (256, 2, 2) and rows["layer3"]["calls"] == 1
    hooks = matching.FeatureHooks(mobilenet, ["features.6"], "student")
    mobilenet.eval()(x)
    assert tuple(hooks.out["features.6"].shape) == (2, 40, 2, 2)
    hooks.remove()
    with pytest.raises(ConfigError, match="has no layer 'layer5'; close names: layer"):
        matching.resolve(resnet, "layer5", "teacher")


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """One run: a torchvision resnet18 teacher from a state_dict, a mobilenet_v3_small student, fitnet on named
    layers, exported to TorchScript, ONNX and a state_dict."""
    from kdstudio.core.pipeline import engine
    out = tmp_path_factory.mktemp("hub-run")
    path = _save(_library("torchvision:resnet18"), out / "teacher.pt")
    cfg = _cfg(**{"teacher.arch": "torchvision:resnet18", "teacher.path": str(path),
                  "student.arch": "torchvision:mobilenet_v3_small", "distill.feature_method": "fitnet",
                  "distill.teacher_layers": '["layer3"]', "distill.student_layers": '["features.6"]',
                  "export.formats": ["torchscript", "onnx", "state_dict"]})
    return engine.run(cfg, out / "run"), out / "run"


def test_distill_run_with_hub_teacher_and_student_end_to_end(distilled):
    summary, _ = distilled
    assert summary["status"] == "completed" and summary["teacher"]["source"] == "file"
    assert summary["student"]["params"] == models.count_params(_library("torchvision:mobilenet_v3_small"))


def test_hub_student_exports_with_parity(distilled):
    pytest.importorskip("onnxruntime")
    summary, folder = distilled
    by_format = {e["format"]: e for e in summary["exports"]}
    assert set(by_format) == {"torchscript", "onnx", "state_dict"} and not summary.get("export_failed")
    for fmt, e in by_format.items():
        assert e["max_abs_diff"] <= 1e-4 and e["top1_agreement"] == 1.0, fmt
    assert (folder / "exports" / "student.arch.json").is_file()


def test_attention_transfer_between_a_timm_teacher_and_a_narrow_student(tmp_path):
    from kdstudio.core.pipeline import engine
    path = _save(_library("timm:resnet18"), tmp_path / "teacher.safetensors")
    cfg = _cfg(**{"teacher.arch": "timm:resnet18", "teacher.path": str(path), "student.arch": "teacher",
                  "student.width_mult": 0.25, "distill.method": "at", "distill.teacher_layers": '["layer2"]',
                  "distill.student_layers": '["layer2"]'})
    assert engine.run(cfg, tmp_path / "run")["status"] == "completed"


@pytest.mark.parametrize("prefix", ["torchvision", "timm"])
def test_missing_or_mismatched_package_is_one_sentence(monkeypatch, prefix):
    arch = f"{prefix}:resnet18"
    hub._package.cache_clear()
    hub.names.cache_clear()
    try:
        def missing(name, *a, **k):
            raise ModuleNotFoundError(f"No module named '{prefix}'", name=prefix)
        monkeypatch.setattr(hub.importlib, "import_module", missing)
        with pytest.raises(ConfigError, match=re.escape(f"needs the '{prefix}' package, which is not installed; "
                                                        'install it with `pip install "kdstudio[vision]"`')):
            models.build(arch, CLASSES, (3, 32, 32))
        hub._package.cache_clear()

        def broken(name, *a, **k):
            raise RuntimeError("operator torchvision::nms does not exist")
        monkeypatch.setattr(hub.importlib, "import_module", broken)
        with pytest.raises(ConfigError, match=rf"which is installed but does not match this PyTorch build "
                                              rf"\({re.escape(torch.__version__)}: operator torchvision::nms does "
                                              r"not exist\)"):
            models.build(arch, CLASSES, (3, 32, 32))
    finally:
        hub._package.cache_clear()
        hub.names.cache_clear()


@pytest.mark.parametrize("arch, near", [("torchvision:resnet19", "'torchvision:resnet18'"),
                                        ("timm:mobilenetv3_smal", "'timm:mobilenetv3_small_100'"),
                                        ("torchvision:fasterrcnn_resnet50_fpn", "'torchvision:resnet50'")])
def test_unknown_model_name_gives_the_closest_names(arch, near):
    with pytest.raises(ConfigError, match="has no (image-classification )?model named") as e:
        models.build(arch, CLASSES, (3, 32, 32))
    assert near in str(e.value) and "list_models() lists them all" in str(e.value)


def test_method_page_lists_the_module_paths_of_a_torchvision_teacher(window, qtbot, tmp_path):
    pytest.importorskip("pytestqt")
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QAbstractItemView
    path = _save(_library("torchvision:resnet18"), tmp_path / "resnet18.pt")
    window.panel.new_project("Hub layers")
    window.model.replace(_cfg(**{"teacher.arch": "torchvision:resnet18", "teacher.path": str(path),
                                 "student.arch": "torchvision:mobilenet_v3_small",
                                 "distill.feature_method": "fitnet"}))
    window.model.save_now()
    window.hub.load_catalog()
    qtbot.waitUntil(lambda: window.hub.info is not None, timeout=120_000)
    window.show_page("Method")
    page = window.pages["Method"]
    teacher, student = page.pickers["teacher"], page.pickers["student"]
    qtbot.waitUntil(lambda: teacher.isEnabled() and student.isEnabled(), timeout=10_000)
    assert {"layer1", "layer3", "layer4.1.conv2", "avgpool"} <= set(teacher.names())
    assert "layer4.1.relu" not in teacher.names()  # runs twice per block: ambiguous, so not offered
    assert {"features.6", "features.12", "classifier.0"} <= set(student.names())
    i = teacher.findData("layer3")
    assert "256×2×2" in teacher.itemText(i)
    page.ensureWidgetVisible(teacher)
    qtbot.mouseClick(teacher, Qt.LeftButton)  # opens the list; then the user clicks 'layer3' in it
    view = teacher.view()
    qtbot.waitUntil(view.isVisible, timeout=5_000)
    view.scrollTo(teacher.model().index(i, 0), QAbstractItemView.PositionAtCenter)
    qtbot.wait(700)  # a combo box ignores a release within its double-click interval after opening
    qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=view.visualRect(teacher.model().index(i, 0)).center())
    qtbot.waitUntil(lambda: window.model.cfg.distill.teacher_layers == ["layer3"], timeout=5_000)
    assert page.form.fields["distill.teacher_layers"].editor.text() == '["layer3"]'
    assert teacher.currentIndex() == 0  # ready for the next layer
