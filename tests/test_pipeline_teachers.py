"""The engine with a teacher from a file: state_dict, multi-teacher, fine-tune, and the sanity check."""

import pytest
import torch

from kdstudio.core.pipeline import engine
from kdstudio.core import events, models
from kdstudio.core.errors import KDError
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    """A digits teacher trained by a short run, saved as a plain state_dict."""
    out = tmp_path_factory.mktemp("t")
    engine.run(tiny_config(**{"distill.epochs": 1, "baseline.enabled": False, "export.formats": [],
                              "teacher.epochs": 3}), out)
    path = out / "teacher.pt"
    torch.save(torch.load(out / "checkpoints" / "teacher.pt", weights_only=False)["model"], path)
    return path


def _file_cfg(path, **more):
    return tiny_config(**{"teacher.source": "file", "teacher.path": str(path), "distill.epochs": 1,
                          "baseline.enabled": False, "export.formats": [], **more})


def test_file_teacher_and_multi_teacher(tmp_path, teacher_file):
    logs = []
    s = engine.run(_file_cfg(teacher_file, **{"teacher.extra_paths": f'["{teacher_file}"]'}), tmp_path,
                   on_event=lambda e: logs.append(e.data.get("message", "")) if e.kind == events.LOG else None)
    assert s["status"] == "completed" and s["teacher"]["source"] == "file"
    assert s["teacher"]["accuracy"] > 0.3 and s["teacher"]["sanity"]["ok"]
    assert any("Multi-teacher" in m for m in logs)


def test_fine_tune_changes_only_the_last_layer(tmp_path, teacher_file):
    s = engine.run(_file_cfg(teacher_file, **{"teacher.finetune_layers": 1, "teacher.finetune_epochs": 1}),
                   tmp_path)
    assert s["status"] == "completed"
    tuned = torch.load(tmp_path / "checkpoints" / "teacher.pt", weights_only=False)["model"]
    original = torch.load(teacher_file, weights_only=True)
    changed = {k for k, v in original.items() if not torch.equal(v, tuned["model." + k].cpu())}
    assert changed and all(k.startswith("classifier") for k in changed), changed
    from kdstudio.core.outputs.artifacts import load_run
    loaded = load_run(tmp_path)  # `kdstudio eval` of the folder: the fine-tuned teacher, not the file's
    assert not [n for n in loaded.notes if "teacher" in n], loaded.notes
    assert torch.equal(loaded.models["teacher"].state_dict()["classifier.weight"], tuned["model.classifier.weight"])


def test_near_chance_teacher_stops_with_a_pointer_to_preprocessing(tmp_path):
    torch.manual_seed(0)
    bad = models.build("cnn", 10, (1, 8, 8), 8, 2)
    with torch.no_grad():
        bad.classifier.weight.zero_()
        bad.classifier.bias.copy_(torch.arange(10.0))  # always predicts class 9
    path = tmp_path / "bad.pt"
    torch.save(bad.state_dict(), path)
    with pytest.raises(KDError, match="chance"):
        engine.run(_file_cfg(path), tmp_path / "run")
    warnings = []
    s = engine.run(_file_cfg(path, **{"teacher.skip_sanity_check": True}), tmp_path / "run2",
                   on_event=lambda e: warnings.append(e) if e.kind == events.WARNING else None)
    assert s["status"] == "completed" and warnings


def test_unknown_feature_layer_is_reported_before_the_teacher_trains(tmp_path):
    cfg = tiny_config(**{"distill.feature_method": "fitnet", "student.arch": "cnn", "student.width": 4,
                         "student.depth": 2, "distill.student_layers": '["features.9"]',
                         "distill.teacher_layers": '["features.1"]'})
    seen = []
    with pytest.raises(KDError, match="features.9"):
        engine.run(cfg, tmp_path, on_event=seen.append)
    assert not [e for e in seen if e.kind == events.EPOCH]  # nothing trained
