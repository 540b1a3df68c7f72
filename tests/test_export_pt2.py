"""The torch.export family of formats (.pt2, OpenVINO IR, ExecuTorch .pte) and the dynamo ONNX exporter: each
writes, reloads in its own runtime and agrees with the live student on the digits test split."""

import importlib.util
import json
import os

import pytest
import torch
from torch import nn

from kdstudio.core.outputs import artifacts, export, modelcard
from kdstudio.core.outputs.export_pt2 import EXECUTORCH_MAX_BATCH
from kdstudio.core.pipeline import engine
from tests.helpers import tiny_config

NEW = ["torch_export", "openvino", "executorch"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pt2-run")
    cfg = tiny_config(teacher__epochs=3, distill__epochs=3)
    cfg.evaluate.latency_repeats = 0
    cfg.export.formats = ["state_dict"]
    engine.run(cfg, out)
    return out


def _installed(fmt):
    return not export.export_format(fmt).missing()


@pytest.mark.parametrize("fmt", NEW)
def test_each_new_format_exports_reloads_and_agrees(run, tmp_path, fmt):
    if not _installed(fmt):
        pytest.skip(f"{fmt} is not installed here")
    res = artifacts.export_run(run, [fmt], out=tmp_path, latency_repeats=2)
    assert not res["failed"], res["failed"]
    e = res["exports"][0]
    assert e["max_abs_diff"] <= 1e-4 and e["top1_agreement"] == 1.0
    assert e["checked_on"] > 256  # more than one batch of the check, so the batch dimension is dynamic
    assert e["latency_ms"]["cpu_b1"] > 0 and e["latency_ms"]["cpu_b64"] > 0 and e["dynamic_batch"]
    assert e["path"].endswith(export.file_name(fmt)) and e["bytes"] > 0
    card = (tmp_path / modelcard.MARKDOWN).read_text()
    assert f"### {fmt}" in card and f"`{os.path.basename(e['path'])}`" in card


def test_torch_export_file_runs_any_batch_without_kdstudio(run, tmp_path):
    res = artifacts.export_run(run, ["torch_export"], out=tmp_path, latency_repeats=0)
    program = torch.export.load(res["exports"][0]["path"])
    student = artifacts.load_run(run, variants=False).models["student"]
    for n in (1, 7, 300):
        x = torch.randn(n, 1, 8, 8)
        assert torch.allclose(program.module()(x), student(x), atol=1e-5)


def test_openvino_writes_its_weights_beside_the_graph(run, tmp_path):
    if not _installed("openvino"):
        pytest.skip("openvino is not installed here")
    e = artifacts.export_run(run, ["openvino"], out=tmp_path, latency_repeats=0)["exports"][0]
    weights = tmp_path / "student.openvino.bin"
    assert e["weights_file"] == str(weights) and weights.stat().st_size > 0
    assert e["bytes"] == weights.stat().st_size + os.path.getsize(e["path"])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_executorch_conv_student_keeps_its_batch_bound(tmp_path):
    """XNNPACK 1.5 plans a convolution's dynamic input far below the exported bound; the writer notices and
    falls back to the portable kernels rather than writing a file that refuses a batch of 256."""
    if not _installed("executorch"):
        pytest.skip("executorch is not installed here")
    from kdstudio.core import models
    make = lambda: models.build("cnn", 10, (1, 8, 8), 8, 1)  # noqa: E731
    model = make().eval()
    x = torch.randn(EXECUTORCH_MAX_BATCH + 44, 1, 8, 8)
    res = export.export_all(model, make, {"arch": "cnn"}, ["executorch"], tmp_path, x, latency_repeats=0)
    e = res["exports"][0]
    assert e["top1_agreement"] == 1.0 and e["max_abs_diff"] <= 1e-4 and e["max_batch"] == EXECUTORCH_MAX_BATCH
    assert "portable" in e["runtime"] and "XNNPACK" in e["note"]


def test_onnx_uses_the_dynamo_exporter_and_records_its_opset(run, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    e = artifacts.export_run(run, ["onnx"], out=tmp_path, latency_repeats=0)["exports"][0]
    written = next(o.version for o in onnx.load(e["path"]).opset_import if o.domain in ("", "ai.onnx"))
    assert e["opset"] == written
    if importlib.util.find_spec("onnxscript") is None:
        assert e["exporter"] == "torchscript" and "pip install onnxscript" in e["note"]
    else:
        assert e["exporter"] == "dynamo" and "note" not in e and written >= 18
    assert e["top1_agreement"] == 1.0


class _DataDependent(nn.Module):
    """A forward whose Python branch depends on the data: torch.export refuses it, TorchScript tracing does not."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        y = self.fc(x.flatten(1))
        if y.sum() > 1e9:
            return -y
        return y


def test_a_model_torch_export_cannot_capture_is_one_sentence_and_others_export(tmp_path):
    model = _DataDependent().eval()
    res = export.export_all(model, _DataDependent, {"arch": "custom"}, ["torch_export", "torchscript"], tmp_path,
                            torch.randn(8, 1, 8, 8), latency_repeats=0)
    assert [e["format"] for e in res["exports"]] == ["torchscript"]
    err = res["failed"][0]
    assert err["format"] == "torch_export" and "torch.export cannot capture this model" in err["error"]
    assert "\n" not in err["error"] and not (tmp_path / "student.pt2").exists()


def test_missing_converter_names_its_install_command(run, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("openvino", "executorch") else real(name, *a))
    res = artifacts.export_run(run, ["openvino", "executorch", "torch_export"], out=tmp_path, latency_repeats=0)
    assert [e["format"] for e in res["exports"]] == ["torch_export"]
    errors = {f["format"]: f["error"] for f in res["failed"]}
    assert "pip install openvino" in errors["openvino"] and "pip install executorch" in errors["executorch"]
    avail = {a["format"]: a for a in export.available_formats()}
    assert not avail["openvino"]["available"] and avail["torch_export"]["available"]


def test_int8_in_the_torch_export_family(run, tmp_path):
    """With torchao the int8 model is PT2E's graph, which .pt2 holds; OpenVINO and ExecuTorch refuse it in one
    sentence. Without torchao (torch.ao's int8 modules) .pt2 refuses too and names the install command."""
    from kdstudio.core.outputs.compress import pt2e_available
    res = artifacts.export_run(run, ["torch_export", "openvino", "executorch", "state_dict"], quantize="int8",
                               out=tmp_path, latency_repeats=0)
    done = {e["format"]: e for e in res["exports"]}
    errors = {f["format"]: f["error"] for f in res["failed"]}
    assert "state_dict" in done and all("\n" not in m for m in errors.values())
    for fmt in ("openvino", "executorch"):
        if _installed(fmt):
            assert "does not convert the x86 int8 graph" in errors[fmt]
    if pt2e_available():
        e = done["torch_export"]
        assert e["top1_agreement"] == 1.0 and e["max_abs_diff"] <= 1e-4 and e["path"].endswith("student.int8.pt2")
        program = torch.export.load(e["path"]).module()
        assert any("quantize" in str(n.target) for n in program.graph.nodes)
    else:
        assert "pip install torchao" in errors["torch_export"]


def test_load_snippets_of_the_new_formats_work(run, tmp_path):
    formats = [f for f in NEW if _installed(f)]
    artifacts.export_run(run, formats, out=tmp_path, latency_repeats=0)
    card = json.loads((tmp_path / modelcard.JSON).read_text())
    x = artifacts.load_run(run, variants=False).data.x_test[:4]
    want = artifacts.load_run(run, variants=False).models["student"](x)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for fmt in formats:
            scope = {"x": x}
            exec(card["how_to_load"][fmt], scope)
            assert (torch.as_tensor(scope["logits"]) - want).abs().max().item() <= 1e-4, fmt
    finally:
        os.chdir(cwd)


def test_format_all_exports_what_is_installed_and_names_the_rest(run, tmp_path, monkeypatch, capsys):
    from kdstudio.cli import main
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("openvino", "executorch") else real(name, *a))
    assert main(["export", str(run), "--format", "all", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("kdstudio: note: ") for line in err)  # notes, not errors: the exit code is 0
    assert "kdstudio: note: openvino skipped: it needs the optional package(s) openvino: pip install openvino" in err
    assert ("kdstudio: note: executorch skipped: it needs the optional package(s) executorch: pip install "
            "executorch") in err
    assert (tmp_path / "student.pt2").is_file() and not (tmp_path / "student.pte").exists()
    assert main(["export", str(run), "--format", "openvino", "--out", str(tmp_path / "b")]) == 2
