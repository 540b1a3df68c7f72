"""A Hugging Face image classifier in a local folder as the teacher: loaded as the library loads it, with its own
module names, through a whole run, fine-tuned onto the data's classes, and every bad folder in one sentence."""

import copy
import json
import sys

import pytest

pytest.importorskip("transformers")  # a guard only: CI installs transformers, so these run there

import torch  # noqa: E402
from transformers import ResNetConfig, ResNetForImageClassification, ResNetModel  # noqa: E402

from kdstudio.core import trust  # noqa: E402
from kdstudio.core.data import load_data  # noqa: E402
from kdstudio.core.errors import KDError  # noqa: E402
from kdstudio.core.models import finetune, hf, teacher_io  # noqa: E402
from kdstudio.core.pipeline import engine  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402

DIGITS = [f"digit {i}" for i in range(10)]


def tiny_resnet_config(num_labels=10, names=None, channels=1) -> ResNetConfig:
    """A ResNet of a few thousand parameters that takes the digits' 1×8×8 images."""
    names = names if names is not None else DIGITS[:num_labels]
    extra = {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}} if names else {}
    return ResNetConfig(num_channels=channels, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                        num_labels=num_labels, **extra)


def save_folder(model, folder):
    """save_pretrained plus the preprocessor_config.json a Hub folder has beside it."""
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 8}, "do_normalize": True,
         "image_mean": [0.5], "image_std": [0.5]}))
    return folder


@pytest.fixture(scope="module")
def lib_model():
    torch.manual_seed(0)
    return ResNetForImageClassification(tiny_resnet_config()).eval()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, lib_model):
    return save_folder(lib_model, tmp_path_factory.mktemp("hf") / "tiny-resnet")


@pytest.fixture(scope="module")
def bundle():
    return load_data(tiny_config())


def _cfg(path, **more):
    return tiny_config(**{"teacher.source": "file", "teacher.path": str(path), "distill.epochs": 1,
                          "baseline.enabled": False, "export.formats": [], "teacher.skip_sanity_check": True,
                          **more})


def _load(path, bundle, **more):
    return teacher_io.load_teacher(_cfg(path, **more), bundle, torch.device("cpu"))


def test_loads_as_the_library_model_with_its_module_names(folder, lib_model, bundle):
    teacher = _load(folder, bundle)
    assert sum(p.numel() for p in teacher.parameters()) == sum(p.numel() for p in lib_model.parameters())
    x = bundle.x_val[:16]
    with torch.no_grad():
        assert (teacher(x) - lib_model(pixel_values=x).logits).abs().max() <= 1e-5
    assert [n for n, _ in teacher.named_modules()] == [n for n, _ in lib_model.named_modules()]
    assert list(teacher.state_dict()) == list(lib_model.state_dict())
    rec = teacher_io.info(teacher)
    assert (rec["format"], rec["arch"], rec["model_type"]) == ("hf", "ResNetForImageClassification", "resnet")
    assert rec["class_names"] == DIGITS == hf.class_names(folder)
    assert teacher_io.check_model(teacher, bundle, "cpu", role="teacher") == 10
    assert teacher_io.sanity_check(teacher, bundle, "cpu", skip=True).samples == len(bundle.y_val)


def test_a_copy_and_a_dtype_change_reach_the_library_model(folder, bundle):
    teacher = _load(folder, bundle)
    twin = copy.deepcopy(teacher)
    assert twin.resnet is twin.hf_model.resnet and twin.resnet is not teacher.resnet
    twin.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in twin.hf_model.parameters())
    assert all(p.dtype == torch.float32 for p in teacher.parameters())  # the original is untouched
    x = bundle.x_val[:4]
    with torch.no_grad():
        assert (twin(x.double()).float() - teacher(x)).abs().max() <= 1e-5
    twin.train()
    assert twin.hf_model.training and twin.resnet.training


def test_class_names_ignore_the_default_labels(tmp_path):
    save_folder(ResNetForImageClassification(tiny_resnet_config(names=[])), tmp_path / "plain")
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["id2label"]["0"] == "LABEL_0"
    assert hf.class_names(tmp_path / "plain") == []
    assert hf.class_names(tmp_path / "nowhere") == []


def test_distills_end_to_end_through_arch_hf(tmp_path, folder):
    s = engine.run(_cfg(folder, **{"teacher.arch": "hf"}), tmp_path)
    assert s["status"] == "completed"
    assert s["teacher"]["arch"] == "ResNetForImageClassification" and s["teacher"]["source"] == "file"
    assert s["teacher"]["params"] == sum(p.numel() for p in ResNetForImageClassification(
        tiny_resnet_config()).parameters())
    assert s["student"]["accuracy"] is not None


def test_fitnet_matches_a_real_hf_module_path(tmp_path, folder):
    s = engine.run(_cfg(folder, **{"distill.feature_method": "fitnet", "student.arch": "cnn", "student.width": 4,
                                   "student.depth": 2, "distill.student_layers": '["features.1"]',
                                   "distill.teacher_layers": '["resnet.encoder.stages.1"]'}), tmp_path)
    assert s["status"] == "completed"
    with pytest.raises(KDError, match="resnet.encoder.stages.9"):
        engine.run(_cfg(folder, **{"distill.feature_method": "fitnet", "student.arch": "cnn", "student.width": 4,
                                   "student.depth": 2, "distill.student_layers": '["features.1"]',
                                   "distill.teacher_layers": '["resnet.encoder.stages.9"]'}), tmp_path / "bad")


def test_a_head_of_the_wrong_size_is_refused_or_replaced_by_fine_tuning(tmp_path, bundle):
    torch.manual_seed(1)
    three = save_folder(ResNetForImageClassification(tiny_resnet_config(3, ["cat", "dog", "bird"])),
                        tmp_path / "three")
    with pytest.raises(KDError, match=r"classifies 3 classes \(cat, dog, bird\) but the data has 10"):
        _load(three, bundle)
    replaced = _load(three, bundle, **{"teacher.finetune_layers": 1})
    assert teacher_io.info(replaced)["new_head"] == "classifier.1" and teacher_io.info(replaced)["class_names"] == []
    assert replaced.hf_model.classifier[1].out_features == 10  # the library model runs the new head
    s = engine.run(_cfg(three, **{"teacher.finetune_layers": 1, "teacher.finetune_epochs": 1}), tmp_path / "run")
    assert s["status"] == "completed" and s["teacher"]["trained_by"] == "teacher"
    tuned = torch.load(tmp_path / "run" / "checkpoints" / "teacher.pt", weights_only=False)["model"]
    assert tuned["model.classifier.1.weight"].shape == (10, 16)


def test_a_top_level_head_is_replaced_on_the_library_model(tmp_path, bundle):
    from transformers import ViTConfig, ViTForImageClassification
    torch.manual_seed(3)
    vit = ViTForImageClassification(ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=8,
                                              num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                                              num_labels=4))
    teacher = _load(save_folder(vit, tmp_path / "vit"), bundle, **{"teacher.finetune_layers": 1})
    assert teacher_io.info(teacher)["new_head"] == "classifier"  # a child of the wrapper and of the library model
    assert teacher.hf_model.classifier is teacher.classifier and teacher.classifier.out_features == 10
    assert teacher(bundle.x_val[:2]).shape == (2, 10)
    assert finetune.prepare_finetune(teacher, 1).trainable == ["classifier"]


def test_a_base_model_without_its_head_needs_fine_tuning(tmp_path, bundle):
    base = save_folder(ResNetModel(tiny_resnet_config()), tmp_path / "base")
    with pytest.raises(KDError, match="lack 2 of the model's tensors.*classifier.1.bias.*finetune_layers"):
        _load(base, bundle)
    warnings = []
    teacher = teacher_io.load_teacher(_cfg(base, **{"teacher.finetune_layers": 1}), bundle, "cpu",
                                      warn=warnings.append)
    assert any("start random" in w for w in warnings)
    ft = finetune.prepare_finetune(teacher, 1)
    assert ft.trainable == ["classifier.1"]


def test_channels_that_do_not_fit_are_one_sentence(tmp_path, bundle):
    rgb = save_folder(ResNetForImageClassification(tiny_resnet_config(channels=3)), tmp_path / "rgb")
    with pytest.raises(KDError, match="takes 3 channels"):
        _load(rgb, bundle)


def _one_sentence(e: pytest.ExceptionInfo, folder) -> str:
    text = str(e.value)
    assert str(folder) in text and "\n" not in text and "Traceback" not in text
    return text


def test_bad_folders_are_one_sentence_each(tmp_path, folder, bundle, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(KDError, match="no config.json") as e:
        _load(empty, bundle, **{"teacher.arch": "hf"})
    _one_sentence(e, empty)
    with pytest.raises(KDError, match="folder without a config.json") as e:
        _load(empty, bundle)
    _one_sentence(e, empty)

    with pytest.raises(KDError, match="is a file, not a Hugging Face model folder") as e:
        _load(folder / "config.json", bundle, **{"teacher.arch": "hf"})
    _one_sentence(e, folder / "config.json")

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    (broken / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    with pytest.raises(KDError, match="not valid JSON") as e:
        _load(broken, bundle)
    _one_sentence(e, broken)

    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(KDError, match="no weights") as e:
        _load(no_weights, bundle)
    _one_sentence(e, no_weights)

    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "config.json").write_text((folder / "config.json").read_text())
    (cut / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:200])
    with pytest.raises(KDError, match="could not be loaded by transformers") as e:
        _load(cut, bundle)
    _one_sentence(e, cut)

    monkeypatch.setitem(sys.modules, "transformers", None)  # as if it were not installed
    with pytest.raises(KDError, match=r'pip install "kdstudio\[hf\]"') as e:
        _load(folder, bundle)
    _one_sentence(e, folder)


def test_arch_hf_to_train_here_is_a_config_problem():
    from kdstudio.core import config
    found = dict(config.problems(tiny_config(**{"teacher.arch": "hf"})))
    assert "Hugging Face model folder" in found["teacher.arch"]
    assert "teacher.arch" not in dict(config.problems(tiny_config(**{"teacher.arch": "hf", "teacher.source": "file",
                                                                     "teacher.path": "."})))


def test_a_text_model_is_not_an_image_classifier(tmp_path, bundle):
    from transformers import BertConfig, BertForSequenceClassification
    bert = BertForSequenceClassification(BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1,
                                                    num_attention_heads=1, intermediate_size=8, num_labels=10))
    bert.save_pretrained(tmp_path / "bert")
    with pytest.raises(KDError, match="'bert' model \\(BertForSequenceClassification\\), which is not an image "
                                      "classifier") as e:
        _load(tmp_path / "bert", bundle)
    _one_sentence(e, tmp_path / "bert")


REMOTE_CODE = '''
import torch
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput


class KdTinyConfig(PretrainedConfig):
    model_type = "kd-tiny"


class KdTinyForImageClassification(PreTrainedModel):
    config_class = KdTinyConfig

    def __init__(self, config):
        super().__init__(config)
        self.classifier = torch.nn.Linear(64, config.num_labels)
        self.post_init()

    def forward(self, pixel_values, labels=None, **kwargs):
        return ImageClassifierOutput(logits=self.classifier(pixel_values.flatten(1)))
'''


def remote_code_folder(tmp_path):
    """A folder whose config.json's auto_map names its own modeling file: (folder, that file, its Linear head)."""
    remote = tmp_path / "remote"
    remote.mkdir()
    code = remote / "modeling_kd_tiny.py"
    code.write_text(REMOTE_CODE)
    (remote / "config.json").write_text(json.dumps({
        "model_type": "kd-tiny", "architectures": ["KdTinyForImageClassification"],
        "id2label": {str(i): n for i, n in enumerate(DIGITS)}, "label2id": {n: i for i, n in enumerate(DIGITS)},
        "auto_map": {"AutoConfig": "modeling_kd_tiny.KdTinyConfig",
                     "AutoModelForImageClassification": "modeling_kd_tiny.KdTinyForImageClassification"}}))
    from safetensors.torch import save_file
    torch.manual_seed(2)
    head = torch.nn.Linear(64, 10)
    save_file({"classifier.weight": head.weight.detach(), "classifier.bias": head.bias.detach()},
              str(remote / "model.safetensors"), metadata={"format": "pt"})
    return remote, code, head


def test_code_in_the_folder_runs_only_once_trusted(tmp_path, bundle, monkeypatch):
    import transformers.dynamic_module_utils as dynamic
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))  # not the user's cache
    remote, code, head = remote_code_folder(tmp_path)
    trust.revoke_all()
    try:
        with pytest.raises(trust.UntrustedFile, match="Python code shipped with a Hugging Face model") as e:
            _load(remote, bundle)
        assert e.value.path == code and e.value.kind == "remote_code"
        assert not (tmp_path / "modules").exists()  # nothing was imported
        trust.grant(code)
        teacher = _load(remote, bundle)
        x = bundle.x_val[:8]
        with torch.no_grad():
            assert (teacher(x) - head(x.flatten(1))).abs().max() <= 1e-5
        assert teacher_io.info(teacher)["remote_code"] == [str(code)]
        code.write_text(REMOTE_CODE + "\n# edited\n")  # another content: asked again
        with pytest.raises(trust.UntrustedFile):
            _load(remote, bundle)
    finally:
        trust.revoke_all()


def test_an_image_folder_prepared_by_the_folders_processor_distils_end_to_end(tmp_path):
    import numpy as np
    from PIL import Image
    from transformers import ConvNextImageProcessor
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for name in ("ant", "bee", "cat"):
        (data / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (20, 26, 3), dtype=np.uint8)).save(data / name / f"{i}.png")
    torch.manual_seed(4)
    folder = tmp_path / "hf"
    ResNetForImageClassification(tiny_resnet_config(3, ["cat", "ant", "bee"], channels=3)).save_pretrained(folder)
    ConvNextImageProcessor(size={"shortest_edge": 16}, crop_pct=0.875, image_mean=[0.5] * 3,
                           image_std=[0.25] * 3).save_pretrained(folder)
    cfg = _cfg(folder, **{"data.source": "folder", "data.path": str(data), "data.batch_size": 4,
                          "student.arch": "cnn", "student.width": 4, "student.depth": 2})
    s = engine.run(cfg, tmp_path / "run")
    assert s["status"] == "completed" and s["teacher"]["arch"] == "ResNetForImageClassification"
    b = load_data(cfg)
    assert b.input_shape == (3, 16, 16) and b.class_names == ["cat", "ant", "bee"]  # the teacher's inputs and order
