"""Teachers from files: each format gives the original's logits; pickles need trust; every teacher check of issue 5
point 4; fine-tuning touches only the unfrozen layers; the sanity check catches a wrong class order."""

import types
import warnings

import pytest
import torch
import torch.nn.functional as F

from kdstudio.core import models, trust
from kdstudio.core.models import finetune, teacher_io
from kdstudio.core.config import Config
from kdstudio.core.data import load_data
from kdstudio.core.errors import ConfigError, KDError
from kdstudio.core.models.teacher_formats import read_safetensors
from kdstudio.core.outputs.export import opset_version

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture(scope="module")
def bundle():
    cfg = Config()
    cfg.data.batch_size = 32
    return load_data(cfg)


@pytest.fixture(scope="module")
def trained(bundle):
    """A small CNN (with batch norm) trained on digits to well above chance."""
    torch.manual_seed(0)
    m = models.build("cnn", 10, bundle.input_shape, 8, 2)
    opt = torch.optim.Adam(m.parameters(), lr=0.02)
    m.train()
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(m(bundle.x_train), bundle.y_train).backward()
        opt.step()
    return m.eval()


def teacher_cfg(path, **teacher):
    cfg = Config()
    cfg.teacher.source, cfg.teacher.path, cfg.teacher.arch = "file", str(path), "cnn"
    cfg.teacher.width, cfg.teacher.depth = 8, 2
    for k, v in teacher.items():
        setattr(cfg.teacher, k, v)
    return cfg


def load(path, bundle, **teacher):
    """Load a teacher file this test made, trusted (tests/test_trust.py covers the refusal of untrusted files)."""
    if path.is_file():
        trust.grant(path)
    return teacher_io.load_teacher(teacher_cfg(path, **teacher), bundle, "cpu")


def same_logits(t, m, bundle):
    x = bundle.x_val[:16]
    with torch.no_grad():
        assert torch.allclose(t(x), m(x), atol=1e-5)


# ---- formats ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["t.pt", "t.pth"])
def test_state_dict_into_zoo_arch(tmp_path, bundle, trained, name):
    torch.save(trained.state_dict(), tmp_path / name)
    t = load(tmp_path / name, bundle)
    same_logits(t, trained, bundle)
    assert not t.training  # in eval mode; FrozenTeacher (the teacher stage) owns the no-grad freeze
    assert teacher_io.info(t)["format"] == "state_dict"


def test_checkpoint_dict_and_dataparallel_prefix(tmp_path, bundle, trained):
    sd = {f"module.{k}": v for k, v in trained.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": sd, "acc": 0.9}, tmp_path / "ckpt.pth")
    same_logits(load(tmp_path / "ckpt.pth", bundle), trained, bundle)


def test_safetensors_into_zoo_arch(tmp_path, bundle, trained):
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(tmp_path / "t.safetensors"))
    t = load(tmp_path / "t.safetensors", bundle)
    same_logits(t, trained, bundle)
    assert teacher_io.info(t)["format"] == "safetensors" and teacher_io.info(t)["arch"] == "cnn"
    back = read_safetensors(tmp_path / "t.safetensors")
    assert all(torch.equal(back[k], v) for k, v in trained.state_dict().items())


def test_half_precision_safetensors_load_into_the_float32_arch(tmp_path, bundle, trained):
    from safetensors.torch import save_file
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in trained.state_dict().items()}
    save_file(half, str(tmp_path / "half.safetensors"))
    assert read_safetensors(tmp_path / "half.safetensors")["classifier.weight"].dtype == torch.float16
    t = load(tmp_path / "half.safetensors", bundle)
    assert all(p.dtype == torch.float32 for p in t.parameters())
    with torch.no_grad():  # fp16 weights: within their rounding of the original
        assert torch.allclose(t(bundle.x_val[:16]), trained(bundle.x_val[:16]), atol=0.05)


def _damage(data: bytes, how: str) -> bytes:
    """A safetensors file spoilt one way: u64 header size, JSON header, raw data."""
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n].decode()
    if how == "cut data":
        return data[:-20]
    if how == "cut header":
        return data[:8 + n // 2]
    if how == "unknown dtype":
        return data.replace(b'"dtype":"F32"', b'"dtype":"Q7X"', 1)
    if how == "offsets past the end":
        first = header.index('"data_offsets":[') + len('"data_offsets":[')
        end = header.index("]", first)
        bad = header[:first] + f"0,{10 ** 9}" + header[end:]
        return len(bad).to_bytes(8, "little") + bad.encode() + data[8 + n:]
    return b"\x01\x02"  # shorter than the 8-byte header size


@pytest.mark.parametrize("how", ["cut data", "cut header", "unknown dtype", "offsets past the end", "too short"])
def test_damaged_safetensors_are_refused_in_one_sentence(tmp_path, bundle, trained, how):
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(tmp_path / "t.safetensors"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(_damage((tmp_path / "t.safetensors").read_bytes(), how))
    with pytest.raises(KDError) as info:
        load(bad, bundle)
    msg = str(info.value)
    assert msg.startswith(f"Teacher file '{bad}' could not be read as safetensors (")
    assert msg.endswith("it may be corrupt or truncated.") and "\n" not in msg


@pytest.mark.parametrize("name", ["t.pt", "t.ts"])
def test_torchscript(tmp_path, bundle, trained, name):
    torch.jit.save(torch.jit.script(trained), str(tmp_path / name))
    t = load(tmp_path / name, bundle)
    same_logits(t, trained, bundle)
    assert teacher_io.info(t)["format"] == "torchscript" and teacher_io.info(t)["logits_only"]


def export_onnx(model, path, example, dynamic=True):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package")
    kwargs = {"dynamic_axes": {"x": {0: "batch"}}} if dynamic else {}
    # torch's default opset can be newer than the installed onnxruntime reads (20 against 1.16's 19)
    torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["x"], output_names=["logits"],
                      opset_version=opset_version(), **kwargs)


def test_onnx_logits_only_teacher(tmp_path, bundle, trained):
    export_onnx(trained, tmp_path / "t.onnx", bundle.x_val[:2])
    t = load(tmp_path / "t.onnx", bundle)
    same_logits(t, trained, bundle)
    with torch.inference_mode():
        assert t(bundle.x_val[:5]).shape == (5, 10)
    features = types.SimpleNamespace(uses_features=True, name="fitnet")
    with pytest.raises(KDError, match="Method 'fitnet' matches intermediate features, but an ONNX teacher gives "
                                      "logits only"):
        teacher_io.check_method(t, features)
    teacher_io.check_method(t, types.SimpleNamespace(uses_features=False))
    with pytest.raises(KDError, match="ONNX teacher cannot be fine-tuned"):
        finetune.prepare_finetune(t, 1)


def test_onnx_fixed_batch_and_wrong_input_shape(tmp_path, bundle, trained):
    export_onnx(trained, tmp_path / "b1.onnx", bundle.x_val[:1], dynamic=False)
    same_logits(load(tmp_path / "b1.onnx", bundle), trained, bundle)  # run in chunks of 1
    other = models.build("cnn", 10, (3, 16, 16), 8, 2).eval()
    export_onnx(other, tmp_path / "rgb.onnx", torch.zeros(1, 3, 16, 16))
    with pytest.raises(KDError, match=r"expects inputs of shape \(batch, 3, 16, 16\) but the data gives "
                                      r"\(batch, 1, 8, 8\); set data.image_size"):
        load(tmp_path / "rgb.onnx", bundle)


def test_pickled_model_needs_trust(tmp_path, bundle, trained):
    torch.save(trained, tmp_path / "full.pt")
    with pytest.raises(KDError, match="is a pickled full model, and loading it runs code from that file; if you "
                                      "trust it, set teacher.trust_pickle = true"):
        load(tmp_path / "full.pt", bundle)
    t = load(tmp_path / "full.pt", bundle, trust_pickle=True)
    same_logits(t, trained, bundle)
    assert teacher_io.info(t)["format"] == "pickle"


# ---- checks of point 4 -----------------------------------------------------------------------------------

def test_missing_empty_corrupt_and_unknown_files(tmp_path, bundle):
    with pytest.raises(KDError, match="does not exist; check teacher.path"):
        load(tmp_path / "nope.pt", bundle)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(KDError, match="is empty"):
        load(tmp_path / "empty.pt", bundle)
    (tmp_path / "junk.pt").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(KDError, match="could not be read as a PyTorch file .* corrupt"):
        load(tmp_path / "junk.pt", bundle)
    (tmp_path / "cut.safetensors").write_bytes((500).to_bytes(8, "little") + b'{"a": 1')
    with pytest.raises(KDError, match="could not be read as safetensors"):
        load(tmp_path / "cut.safetensors", bundle)
    (tmp_path / "m.h5").write_bytes(b"\x89HDF\r\n")
    with pytest.raises(KDError, match="TensorFlow/Keras model; convert it to ONNX"):
        load(tmp_path / "m.h5", bundle)
    (tmp_path / "m.xyz").write_bytes(b"hello")
    with pytest.raises(KDError, match="has an unknown format; use TorchScript"):
        load(tmp_path / "m.xyz", bundle)


def test_corrupt_onnx(tmp_path, bundle):
    pytest.importorskip("onnxruntime")
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf at all" * 3)
    with pytest.raises(KDError, match="could not be read as ONNX"):
        load(tmp_path / "bad.onnx", bundle)


def test_key_and_shape_mismatches_name_the_first_keys(tmp_path, bundle, trained):
    torch.save(trained.state_dict(), tmp_path / "t.pt")
    with pytest.raises(KDError, match=r"do not fit architecture 'mlp'.*: the file lacks \d+ of the model's \d+ keys "
                                      r"\(features\.1\.weight, features\.1\.bias.*and it has \d+ keys the model does "
                                      r"not have "
                                      r"\(features\.0\.0\.weight"):
        load(tmp_path / "t.pt", bundle, arch="mlp", width=0, depth=0)
    with pytest.raises(KDError, match=r"'features\.0\.0\.weight' has shape \(8, 1, 3, 3\) in the file but "
                                      r"\(16, 1, 3, 3\) in the model"):
        load(tmp_path / "t.pt", bundle, width=16)


def test_teacher_output_size_must_match_the_classes(tmp_path, bundle):
    five = models.build("cnn", 5, bundle.input_shape, 8, 2)
    torch.save(five.state_dict(), tmp_path / "five.pt")
    with pytest.raises(KDError, match="has 5 outputs but the data has 10 classes; set data.class_names"):
        load(tmp_path / "five.pt", bundle)
    torch.jit.save(torch.jit.script(five), str(tmp_path / "five.ts"))
    with pytest.raises(KDError, match="outputs 5 values per sample but the data has 10 classes"):
        load(tmp_path / "five.ts", bundle)


def test_teacher_that_refuses_the_input_shape_reports_both_shapes(tmp_path, bundle):
    rgb = models.build("cnn", 10, (3, 8, 8), 8, 2).eval()
    torch.jit.save(torch.jit.script(rgb), str(tmp_path / "rgb.ts"))
    with pytest.raises(KDError, match=r"does not accept the data's inputs of shape \(2, 1, 8, 8\).*its first layer "
                                      r"'features\.0\.0' takes 3 channels"):
        load(tmp_path / "rgb.ts", bundle)


def test_student_output_size_check(bundle):
    wrong = models.build("mlp", 7, bundle.input_shape, 16, 1)
    with pytest.raises(KDError, match="The student outputs 7 values per sample but the data has 10 classes"):
        teacher_io.check_model(wrong, bundle, "cpu", role="student")
    assert teacher_io.check_model(models.build("mlp", 10, bundle.input_shape), bundle, "cpu") == 10


# ---- sanity check ----------------------------------------------------------------------------------------

def test_sanity_check_passes_a_good_teacher_and_stops_a_wrong_class_order(bundle, trained):
    res = teacher_io.sanity_check(trained, bundle, "cpu")
    assert res.ok and res.accuracy > 0.8 and res.split == "validation" and res.to_dict()["chance"] < 0.15
    shuffled = types.SimpleNamespace(**{k: getattr(bundle, k) for k in ("x_val", "x_test", "x_train",
                                                                         "y_test", "y_train")})
    shuffled.y_val = (bundle.y_val + 3) % 10  # the teacher's classes in another order
    with pytest.raises(KDError, match="about chance: .*data.class_names.*teacher.skip_sanity_check = true"):
        teacher_io.sanity_check(trained, shuffled, "cpu")
    res = teacher_io.sanity_check(trained, shuffled, "cpu", skip=True)
    assert not res.ok and res.accuracy < 0.2


# ---- fine-tuning -----------------------------------------------------------------------------------------

def test_finetune_changes_only_the_unfrozen_layers(tmp_path, bundle, trained):
    torch.save(trained.state_dict(), tmp_path / "t.pt")
    t = load(tmp_path / "t.pt", bundle)
    groups = finetune.layer_groups(t)
    assert groups == [["features.0.0", "features.0.1"], ["features.1.0", "features.1.1"], ["classifier"]]
    before = {k: v.clone() for k, v in t.state_dict().items()}
    ft = finetune.prepare_finetune(t, 2)
    opt = torch.optim.SGD([p for p in ft.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):
        ft.train()
        opt.zero_grad()
        F.cross_entropy(ft(bundle.x_train[:64]), bundle.y_train[:64]).backward()
        opt.step()
    done = finetune.finish_finetune(ft)
    after = done.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("features.1.", "classifier.")) for k in changed)
    assert "features.1.1.running_mean" in changed and "classifier.weight" in changed
    assert not done.training  # the teacher stage freezes it for good (FrozenTeacher)


def test_finetune_replaces_a_head_of_the_wrong_size(tmp_path, bundle):
    five = models.build("cnn", 5, bundle.input_shape, 8, 2)
    torch.save(five.state_dict(), tmp_path / "five.pt")
    msgs = []
    t = teacher_io.load_teacher(teacher_cfg(tmp_path / "five.pt", finetune_layers=1), bundle, "cpu", warn=msgs.append)
    assert t(bundle.x_val[:2]).shape == (2, 10) and "replaced" in msgs[0]
    ft = finetune.prepare_finetune(t, 1)
    assert ft.trainable == ["classifier"]
    with pytest.raises(ConfigError, match="teacher.finetune_layers = 9, but the teacher has 3 layers"):
        finetune.prepare_finetune(t, 9)


def test_check_method_reads_the_distill_config(tmp_path, bundle, trained):
    torch.jit.save(torch.jit.script(trained), str(tmp_path / "t.ts"))
    t = load(tmp_path / "t.ts", bundle)
    cfg = Config()
    teacher_io.check_method(t, cfg.distill)  # plain kd: fine
    cfg.distill.feature_method = "fitnet"
    with pytest.raises(KDError, match="Method 'fitnet' matches intermediate features, but TorchScript modules take "
                                      "no feature hooks"):
        teacher_io.check_method(t, cfg.distill)
