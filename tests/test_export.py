"""Export: every format round-trips on the digits student, bad input leaves nothing half-written, model card."""

import errno
import importlib.util
import json
import os

import pytest
import torch
from torch import nn

from kdstudio.cli import main
from kdstudio.core.outputs import artifacts, export, modelcard
from kdstudio.core.pipeline import engine
from kdstudio.core.errors import KDError
from kdstudio.core.outputs.evaluate import predict_logits
from kdstudio.core.outputs.gain import gain_sentence
from tests.helpers import tiny_config

ALL = ["torchscript", "onnx", "safetensors", "state_dict"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("export-run")
    cfg = tiny_config(teacher__epochs=4, distill__epochs=4)
    cfg.evaluate.latency_repeats = 3
    cfg.export.formats = ALL
    summary = engine.run(cfg, out)
    yield out, summary
    torch.set_num_threads(threads)


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_each_format_round_trips_on_the_digits_student(run):
    out, summary = run
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    by_format = {e["format"]: e for e in summary["exports"]}
    assert set(by_format) == set(ALL) and not summary.get("export_failed")
    for fmt, e in by_format.items():
        assert e["max_abs_diff"] <= 1e-4 and e["top1_agreement"] == 1.0, fmt
        assert e["bytes"] == os.path.getsize(e["path"]) > 0
        assert e["latency_ms"]["cpu_b1"] > 0 and e["latency_ms"]["cpu_b64"] > 0
        assert e["checked_on"] == summary["evaluation"]["table"][0]["n"]  # the whole digits test split
    assert by_format["onnx"]["runtime"].startswith("onnxruntime") and by_format["onnx"]["opset"] >= 13
    assert not _leftovers(out / "exports")


def test_onnx_file_alone_matches_the_student_checkpoint(run):
    out, _ = run
    ort = pytest.importorskip("onnxruntime")
    loaded = artifacts.load_run(out, variants=False)
    x = loaded.data.x_test[:64]
    want = predict_logits(loaded.models["student"], x)
    sess = ort.InferenceSession(str(out / "exports" / "student.onnx"), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(sess.run(None, {"input": x.numpy()})[0])
    assert (got - want).abs().max().item() <= 1e-4
    from safetensors.torch import load_file
    info = json.loads((out / "exports" / "student.arch.json").read_text())
    from kdstudio.core import models
    m = models.build(info["arch"], info["num_classes"], tuple(info["input_shape"]), info["width"], info["depth"])
    m.load_state_dict(load_file(str(out / "exports" / "student.safetensors")))
    assert torch.equal(predict_logits(m, x), want)


def test_existing_files_are_not_overwritten_without_force(run, capsys):
    out, _ = run
    target = out / "exports" / "student.onnx"
    before = target.stat().st_mtime_ns
    assert main(["export", str(out), "--format", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "--force" in err and err.count("\n") == 0
    assert target.stat().st_mtime_ns == before
    assert main(["export", str(out), "--format", "onnx", "--format", "torchscript", "--force"]) == 0
    assert target.stat().st_mtime_ns != before


def test_adding_a_format_does_not_ask_about_the_shared_arch_json(run, tmp_path):
    """student.arch.json is the same for every format of one model: a new format goes next to the old ones."""
    out, _ = run
    folder = tmp_path / "exp"
    assert main(["export", str(out), "--format", "state_dict", "--out", str(folder)]) == 0
    assert main(["export", str(out), "--format", "torchscript", "--out", str(folder)]) == 0
    assert (folder / "student.torchscript.pt").is_file() and (folder / "student.state_dict.pt").is_file()


def test_int8_and_fp16_exports_reload_and_agree(run, tmp_path):
    """The torch formats hold the int8 model itself. The ONNX file is onnxruntime's own int8 of the float model, so
    it may differ where two logits nearly tie; its weights are uint8 because uint8 x int8 products saturate in
    16 bits on x86 CPUs without VNNI (346 of 359 digits agreed there), while uint8 x uint8 is exact everywhere."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out, summary = run
    res = artifacts.export_run(out, ["torchscript", "state_dict", "onnx"], quantize="int8", out=tmp_path,
                               latency_repeats=2)
    assert not res["failed"]
    by_format = {e["format"]: e for e in res["exports"]}
    for e in by_format.values():
        assert e["quantize"] == "int8" and ".int8." in e["path"]
    for fmt in ("torchscript", "state_dict"):  # the same int8 model reloaded: identical
        assert by_format[fmt]["max_abs_diff"] <= 1e-4 and by_format[fmt]["top1_agreement"] == 1.0, fmt
    graph = onnx.load(by_format["onnx"]["path"]).graph
    weights = {t.name: t.data_type for t in graph.initializer}
    products = [n for n in graph.node if n.op_type == "MatMulInteger"]
    assert products and all(weights[n.input[1]] == onnx.TensorProto.UINT8 for n in products)
    assert by_format["onnx"]["top1_agreement"] >= 0.97
    # each entry records the rule it is judged by: the torch int8 files identical, the ONNX file by agreement
    assert by_format["onnx"]["parity"] == {"metric": "top1_agreement", "min": 0.97, "ok": True}
    assert by_format["state_dict"]["parity"] == {"metric": "top1_agreement", "min": 1.0, "ok": True}
    fp16 = artifacts.export_run(out, ["safetensors", "torchscript"], quantize="fp16", out=tmp_path,
                                latency_repeats=2)
    assert [e["top1_agreement"] for e in fp16["exports"]] == [1.0, 1.0]
    sd = artifacts.export_run(out, ["safetensors"], quantize="int8", out=tmp_path / "b", latency_repeats=0)
    assert sd["failed"][0]["format"] == "safetensors" and "int8" in sd["failed"][0]["error"]


def test_missing_optional_package_is_named_and_other_formats_still_written(run, tmp_path, monkeypatch):
    out, _ = run
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    res = artifacts.export_run(out, ["onnx", "state_dict"], out=tmp_path, latency_repeats=0)
    assert [e["format"] for e in res["exports"]] == ["state_dict"]
    assert "pip install onnxruntime" in res["failed"][0]["error"]
    assert not (tmp_path / "student.onnx").exists()
    avail = {a["format"]: a for a in export.available_formats()}
    assert not avail["onnx"]["available"] and "onnxruntime" in avail["onnx"]["reason"]


class _SVD(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 4)

    def forward(self, x):
        h = self.fc(x.flatten(1)).view(-1, 2, 2)
        return torch.linalg.svdvals(h)


def test_an_operator_onnx_cannot_handle_is_named(tmp_path):
    pytest.importorskip("onnx")
    model = _SVD().eval()
    res = export.export_all(model, _SVD, {"arch": "custom"}, ["onnx", "torchscript"], tmp_path,
                            torch.randn(8, 1, 8, 8), latency_repeats=0)
    assert [e["format"] for e in res["exports"]] == ["torchscript"]
    assert "operator 'aten::linalg_svdvals'" in res["failed"][0]["error"]
    assert not (tmp_path / "student.onnx").exists() and not _leftovers(tmp_path)


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   PermissionError(errno.EACCES, "Permission denied")])
def test_disk_full_or_permission_denied_leaves_no_partial_file(run, tmp_path, monkeypatch, error):
    """torch writes into memory (files.atomic_save_buffered); the failing disk write is ours and says so."""
    from kdstudio.core.store import files
    out, _ = run
    real = files.os.fdopen

    def failing_fdopen(fd, mode="r", *a, **k):
        fh = real(fd, mode, *a, **k)
        if "w" in mode and "student.state_dict" in os.readlink(f"/proc/self/fd/{fd}"):
            fh.write(b"half a file")
            fh.close()
            raise error
        return fh
    monkeypatch.setattr(files.os, "fdopen", failing_fdopen)
    with pytest.raises(KDError, match="nothing half-written was left") as info:
        artifacts.export_run(out, ["state_dict"], out=tmp_path, latency_repeats=0)
    assert ("is full" if error.errno == errno.ENOSPC else error.strerror) in str(info.value)
    assert not (tmp_path / "student.state_dict.pt").exists() and not _leftovers(tmp_path)


def test_export_of_a_run_without_a_student(tmp_path, capsys):
    from kdstudio.core import config
    config.save(tiny_config(), tmp_path / "config.toml")
    (tmp_path / "checkpoints").mkdir()
    assert main(["export", str(tmp_path), "--format", "torchscript"]) == 2
    err = capsys.readouterr().err
    assert "no distilled student" in err and "--resume" in err
    assert not (tmp_path / "exports").exists()


def test_unknown_format_is_refused_before_writing(run, tmp_path):
    out, _ = run
    with pytest.raises(KDError, match="Unknown export format 'tflite'.") as info:
        artifacts.export_run(out, ["tflite"], out=tmp_path)
    assert info.value.key == "export.formats"
    with pytest.raises(KDError, match="Unknown export format 'onxx'. Did you mean 'onnx'?"):
        artifacts.export_run(out, ["torchscript", "onxx"], out=tmp_path)
    assert not list(tmp_path.iterdir())


def test_model_card_holds_the_numbers_of_summary_json(run):
    out, _ = run
    summary = json.loads((out / "summary.json").read_text())
    card = json.loads((out / "exports" / modelcard.JSON).read_text())
    for key in ("teacher", "student", "baseline", "compression", "kd_gain", "kd_gain_stats"):
        assert card[key] == summary[key], key
    here = [e for e in summary["exports"] if os.path.dirname(e["path"]) == str(out / "exports")]
    assert card["exports"] == here and {e["format"] for e in here} == set(ALL)
    assert card["metrics"] == summary["evaluation"]["table"]
    text = (out / "exports" / modelcard.MARKDOWN).read_text()
    for who in ("teacher", "student", "baseline"):
        assert f"{summary[who]['accuracy']:.2%}" in text
    assert f"{summary['teacher']['params']:,}" in text
    assert f"KD gain {gain_sentence(summary['kd_gain_stats'], summary['kd_gain'])}" in text
    for e in here:
        assert f"{e['bytes']:,}" in text and f"{e['max_abs_diff']:.2e}" in text and f"### {e['format']}" in text
    assert "```toml" in text and "[distill]" in text and card["kdstudio_version"] in text
    for png in (modelcard.LOSS_PNG, modelcard.CONFUSION_PNG):
        assert (out / "exports" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_snippets_work(run):
    out, _ = run
    pytest.importorskip("onnxruntime")
    card = json.loads((out / "exports" / modelcard.JSON).read_text())
    x = artifacts.load_run(out, variants=False).data.x_test[:4]
    results = []
    cwd = os.getcwd()
    os.chdir(out / "exports")
    try:
        for fmt, code in card["how_to_load"].items():
            scope = {"x": x}
            exec(code, scope)
            results.append(torch.as_tensor(scope["logits"]).detach())
    finally:
        os.chdir(cwd)
    for r in results[1:]:
        assert (r - results[0]).abs().max().item() <= 1e-4
