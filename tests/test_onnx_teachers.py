"""ONNX teachers from other frameworks (issue 15, section 5): the class-score output is chosen by shape and name,
probabilities become log-probabilities with a note, evaluation times them in onnxruntime, and no parameter count
is made up for them."""

import numpy as np
import pytest
import torch

from kdstudio.core.config import Config
from kdstudio.core.data import load_data
from kdstudio.core.errors import KDError
from kdstudio.core.models import teacher_io
from kdstudio.core.models.teacher_formats import looks_like_probabilities
from kdstudio.core.outputs.evaluate import evaluate_model

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


@pytest.fixture(scope="module")
def bundle():
    return load_data(Config())


def _fit(bundle) -> np.ndarray:
    """Least-squares weights (64 -> 10) that classify digits well above chance."""
    x = bundle.x_train.reshape(len(bundle.x_train), -1).numpy()
    y = np.eye(10, dtype=np.float32)[bundle.y_train.numpy()]
    return np.linalg.lstsq(x, y, rcond=None)[0].astype(np.float32) * 8


def sklearn_like(path, w, *, softmax=True, flat=False):
    """A graph shaped as skl2onnx writes classifiers: output 1 the int64 label, output 2 the probabilities."""
    nodes = [] if flat else [helper.make_node("Flatten", ["input"], ["flat"], axis=1)]
    nodes += [helper.make_node("MatMul", ["input" if flat else "flat", "W"], ["scores"]),
              helper.make_node("Softmax" if softmax else "Identity", ["scores"], ["probabilities"], **(
                  {"axis": 1} if softmax else {})),
              helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0)]
    shape = [None, 64] if flat else [None, 1, 8, 8]
    graph = helper.make_graph(nodes, "clf", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                               helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 10])],
                              [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def load(path, bundle, notes):
    cfg = Config()
    cfg.teacher.source, cfg.teacher.path = "file", str(path)
    return teacher_io.load_teacher(cfg, bundle, "cpu", warn=notes.append)


def test_the_probability_output_is_chosen_over_a_label_output_and_logged(tmp_path, bundle):
    notes = []
    t = load(sklearn_like(tmp_path / "clf.onnx", _fit(bundle)), bundle, notes)
    assert t.output_name == "probabilities" and t.probabilities
    assert any("outputs probabilities" in n for n in notes) and any("number 2" in n for n in notes)
    logits = t(bundle.x_val[:32])
    assert torch.allclose(logits.softmax(1).sum(1), torch.ones(32), atol=1e-4)
    assert (logits <= 0).all()  # log-probabilities


def test_a_graph_of_logits_is_used_as_it_is(tmp_path, bundle):
    notes = []
    t = load(sklearn_like(tmp_path / "logits.onnx", _fit(bundle), softmax=False), bundle, notes)
    assert not t.probabilities and not any("probabilities" in n and "logarithms" in n for n in notes)


def test_an_onnx_teacher_evaluates_with_latency_and_no_invented_parameter_count(tmp_path, bundle):
    t = load(sklearn_like(tmp_path / "clf.onnx", _fit(bundle)), bundle, [])
    metrics, _ = evaluate_model(t, bundle.x_test, bundle.y_test, list(bundle.class_names), latency_repeats=2)
    assert metrics["params"] is None and metrics["bytes"] == (tmp_path / "clf.onnx").stat().st_size
    assert metrics["latency_ms"]["cpu_b1"] > 0 and metrics["top1"] > 0.5


def test_a_flat_input_teacher_on_images_says_what_would_fit(tmp_path, bundle):
    with pytest.raises(KDError, match="takes flat vectors of 64 values, and data.image_size cannot flatten"):
        load(sklearn_like(tmp_path / "flat.onnx", _fit(bundle), flat=True), bundle, [])


def test_probability_detection():
    assert looks_like_probabilities(np.array([[0.2, 0.8], [0.5, 0.5]]))
    assert not looks_like_probabilities(np.array([[2.0, -1.0], [0.5, 0.5]]))
    assert not looks_like_probabilities(np.array([[0.2, 0.3]]))



def test_a_zipmap_output_of_probabilities_is_read_in_class_order(tmp_path, bundle):
    """skl2onnx's default: output 1 the label, output 2 a ZipMap (one {class: probability} map per sample)."""
    nodes = [helper.make_node("Flatten", ["input"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "W"], ["scores"]),
             helper.make_node("Softmax", ["scores"], ["probs"], axis=1),
             helper.make_node("ArgMax", ["probs"], ["label"], axis=1, keepdims=0),
             helper.make_node("ZipMap", ["probs"], ["output_probability"], domain="ai.onnx.ml",
                              classlabels_int64s=list(range(10)))]
    maps = helper.make_sequence_type_proto(helper.make_map_type_proto(
        TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))
    graph = helper.make_graph(nodes, "zip", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                           [None, 1, 8, 8])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                               helper.make_value_info("output_probability", maps)],
                              [numpy_helper.from_array(_fit(bundle), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("ai.onnx.ml", 1)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "zip.onnx"))
    t = load(tmp_path / "zip.onnx", bundle, [])
    assert t.output_name == "output_probability" and t.probabilities
    assert t(bundle.x_val[:8]).argmax(1).tolist() == t.scores(bundle.x_val[:8].numpy()).argmax(1).tolist()
