"""A pretrained teacher's own preprocessing: read from torchvision weights, timm's pretrained_cfg and a Hugging Face
folder, applied to image folders on both data paths, recorded in the summary. The torchvision/timm/transformers
checks compare against the libraries' own transforms (they run where those import: CI's regular torch build)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from kdstudio.core import config as config_mod
from kdstudio.core.data import load_data, preprocess
from kdstudio.core.data.folder import Sizing
from kdstudio.core.data.stream import iter_batches
from kdstudio.core.errors import ConfigError
from tests.helpers import tiny_config


def _image(w=50, h=37, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _folder(root, classes=("ant", "bee", "cat"), per_class=6, size=(50, 37)):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            _image(*size, seed=100 * c + i).save(root / name / f"{i}.png")
    return root


def test_sizing_resizes_the_shorter_side_then_crops_the_centre():
    im = _image(50, 37)
    out = Sizing(32, 40, "bilinear").fit(Image, im)
    assert out.size == (32, 32)
    straight = Sizing(32, 0, "bicubic").fit(Image, im)
    assert straight.size == (32, 32)
    assert Sizing().fit(Image, im) is im


def test_hf_preprocessor_configs_of_three_shapes(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"id2label": {"0": "cat", "1": "ant"}}))
    cases = [
        ({"size": {"shortest_edge": 224}, "crop_pct": 0.875, "resample": 3, "image_mean": [0.5] * 3,
          "image_std": [0.5] * 3}, (224, 256, "bicubic")),                       # ConvNeXt / ResNet style
        ({"size": {"shortest_edge": 256}, "do_center_crop": True, "crop_size": {"height": 224, "width": 224},
          "resample": 2, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]},
         (224, 256, "bilinear")),                                                 # BiT style
        ({"size": {"height": 384, "width": 384}, "resample": 2, "image_mean": [0.5] * 3, "image_std": [0.5] * 3},
         (384, 0, "bilinear")),                                                   # ViT style: straight resize
    ]
    for spec, (size, resize, interp) in cases:
        (tmp_path / "preprocessor_config.json").write_text(json.dumps(spec))
        r = preprocess.from_hf(tmp_path, [])
        assert (r.size, r.resize, r.interpolation) == (size, resize, interp), spec
        assert r.class_names == ["cat", "ant"]
        assert ("ImageNet mean/std" in r.describe()) == (r.mean == [0.485, 0.456, 0.406])
    r = preprocess.Preprocessing(224, 256, "bicubic", list(preprocess.IMAGENET_MEAN), list(preprocess.IMAGENET_STD),
                                 "x")
    assert r.describe() == "inputs: 224×224, bicubic, crop 0.875 of 256, ImageNet mean/std — from the teacher (x)"


def test_hf_folder_teacher_drives_the_image_folder_inputs(tmp_path):
    data = _folder(tmp_path / "data")
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "resnet",
                                                "id2label": {"0": "cat", "1": "ant", "2": "bee"}}))
    (hf / "preprocessor_config.json").write_text(json.dumps({
        "size": {"shortest_edge": 24}, "crop_pct": 0.75, "resample": 3, "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.25, 0.25, 0.25], "image_processor_type": "ConvNextImageProcessor"}))
    cfg = tiny_config(**{"data.source": "folder", "data.path": str(data), "data.image_size": 16,
                         "teacher.source": "file", "teacher.path": str(hf), "data.batch_size": 4})
    for mode in ("resident", "streamed"):
        cfg.data.mode = mode
        b = load_data(cfg)
        assert b.input_shape == (3, 24, 24), mode
        assert b.class_names == ["cat", "ant", "bee"], "classes in the teacher's output order"
        assert b.preprocessing["resize"] == 32 and b.preprocessing["interpolation"] == "bicubic"
        assert b.mean == [0.5, 0.5, 0.5] and b.std == [0.25, 0.25, 0.25]
        assert any("data.image_size" in w and "replaced" in w for w in b.warnings)
        assert any("teacher's output order" in w for w in b.warnings)
        assert b.x_test[:3].shape == (3, 3, 24, 24)  # streamed inputs index like tensors (decoded on demand)
    cfg.data.preprocess = "own"
    assert load_data(cfg).input_shape == (3, 16, 16)
    assert cfg.data.image_size == 16, "the user's config is never changed"


def test_streamed_and_resident_give_the_same_pixels(tmp_path):
    data = _folder(tmp_path / "d")
    cfg = tiny_config(**{"data.source": "folder", "data.path": str(data), "data.image_size": 24,
                         "data.resize": 30, "data.interpolation": "bicubic", "data.normalize": "none",
                         "data.batch_size": 4, "data.workers": 0})
    cfg.data.mode = "resident"
    a = load_data(cfg).x_test
    cfg.data.mode = "streamed"
    s = load_data(cfg).x_test
    b = torch.cat(list(iter_batches(s, 4)))
    assert torch.equal(a, b)


def test_resize_needs_a_crop_size_and_at_least_its_size():
    cfg = tiny_config(**{"data.resize": 256})
    assert any(k == "data.resize" for k, _ in config_mod.problems(cfg))
    cfg.data.image_size = 300
    assert any("smaller than the crop" in m for k, m in config_mod.problems(cfg))
    cfg.data.image_size = 224
    assert not [k for k, _ in config_mod.problems(cfg) if k == "data.resize"]


def test_teacher_preprocess_without_a_recipe_is_one_sentence(tmp_path):
    cfg = tiny_config(**{"data.preprocess": "teacher"})
    with pytest.raises(ConfigError, match="names no preprocessing"):
        load_data(cfg)


# ---- against the libraries' own transforms (regular torch build) ----------------------------------------

def test_torchvision_weights_recipe_matches_their_transforms():
    tvm = pytest.importorskip("torchvision.models", exc_type=ImportError)
    r = preprocess.from_torchvision("resnet18", "IMAGENET1K_V1", [])
    t = tvm.ResNet18_Weights.IMAGENET1K_V1.transforms()
    assert (r.size, r.resize, r.interpolation) == (224, 256, "bilinear")
    assert r.mean == list(t.mean) and r.std == list(t.std) and len(r.class_names) == 1000
    assert preprocess.from_torchvision("resnet18", "ResNet18_Weights.IMAGENET1K_V1", []).source == r.source
    with pytest.raises(ConfigError, match="ResNet18_Weights.IMAGENET1K_V1"):
        preprocess.from_torchvision("resnet18", "IMAGENET9K", [])
    # our sizing of a PIL image equals torchvision's Resize + CenterCrop on it
    from torchvision import transforms as T
    im = _image(53, 41)
    ours = np.asarray(Sizing(32, 37, "bilinear").fit(Image, im))
    theirs = np.asarray(T.Compose([T.Resize(37), T.CenterCrop(32)])(im))
    assert np.array_equal(ours, theirs)


def test_timm_recipe_and_pixels_match_timms_eval_transform(tmp_path):
    timm = pytest.importorskip("timm", exc_type=ImportError)
    r = preprocess.from_timm("test_efficientnet", "", [])
    c = timm.data.resolve_data_config({}, model=timm.create_model("test_efficientnet", pretrained=False))
    assert r.size == c["input_size"][1] and r.interpolation == c["interpolation"]
    assert r.mean == list(c["mean"]) and r.std == list(c["std"]) and abs(r.crop_pct - c["crop_pct"]) < 0.01
    data = _folder(tmp_path / "d", size=(200, 170))
    cfg = tiny_config(**{"data.source": "folder", "data.path": str(data), "teacher.source": "file",
                         "teacher.arch": "timm:test_efficientnet", "teacher.path": str(tmp_path / "t.pt"),
                         "data.batch_size": 4, "data.val_fraction": 0.0, "data.test_fraction": 0.5})
    b = load_data(cfg)
    assert "timm pretrained_cfg of test_efficientnet" in b.inputs and b.input_shape == (3, 160, 160)
    transform = timm.data.create_transform(**c, is_training=False)
    # the test split's first image, found by its pixels among the folder's files
    files = sorted(data.glob("*/*.png"))
    expected = torch.stack([transform(Image.open(f).convert("RGB")) for f in files])
    got = b.x_test[0]
    assert min(float((got - e).abs().max()) for e in expected) < 1e-5


def test_hf_recipe_matches_the_image_processor(tmp_path):
    transformers = pytest.importorskip("transformers", exc_type=ImportError)
    proc = transformers.ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875, resample=3,
                                               image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.25, 0.3])
    proc.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "convnext"}))
    r = preprocess.from_hf(tmp_path, [])
    assert (r.size, r.resize, r.interpolation) == (32, 36, "bicubic")
    im = _image(61, 45)
    theirs = proc(im, return_tensors="pt")["pixel_values"][0]
    ours = torch.from_numpy(np.asarray(Sizing(r.size, r.resize, r.interpolation).fit(Image, im)).copy())
    ours = (ours.permute(2, 0, 1).float() / 255 - torch.tensor(r.mean).view(3, 1, 1)) / torch.tensor(r.std).view(3, 1, 1)
    assert ours.shape == theirs.shape
    levels = ((ours - theirs).abs() * torch.tensor(r.std).view(3, 1, 1) * 255).max()
    assert float(levels) <= 1.0001  # at most one grey level apart: transformers rounds its own resize
