"""The streamed data path: image folders decoded per batch by DataLoader workers, the mode choice, the disk
teacher-output cache, exact resume mid-epoch, and bad files named in one sentence."""

from pathlib import Path

import numpy as np
import pytest
import torch

from kdstudio.core import events
from kdstudio.core.pipeline import engine
from kdstudio.core.config import Config
from kdstudio.core.data import load_data
from kdstudio.core.data.stream import StreamedInputs, choose_mode
from kdstudio.core.errors import KDError
from tests.helpers import tiny_config, assert_stop_mid_epoch_then_resume_equals_uninterrupted

PIL = pytest.importorskip("PIL.Image")


def make_folder(root: Path, n: int = 120, size: int = 12, classes: int = 3, seed: int = 0) -> Path:
    """A learnable image folder: each class a colour pattern under noise, PNG files in class sub-folders."""
    rng = np.random.default_rng(seed)
    protos = rng.random((classes, size, size, 3))
    for i in range(n):
        c = i % classes
        a = np.clip(protos[c] + 0.25 * rng.standard_normal((size, size, 3)), 0, 1)
        d = root / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        PIL.fromarray((a * 255).astype(np.uint8)).save(d / f"{i:05d}.png")
    return root


def folder_config(path: Path, **overrides) -> Config:
    cfg = tiny_config(**{"data.source": "folder", "data.path": str(path), "data.batch_size": 16,
                         "data.mode": "streamed", "data.workers": 0, "teacher.epochs": 6,
                         "distill.epochs": 2, "baseline.enabled": False, "export.formats": [],
                         "evaluate.latency_repeats": 0, **overrides})
    return cfg


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("imgs"))


def test_streamed_bundle_matches_the_resident_one(folder):
    resident = load_data(folder_config(folder, **{"data.mode": "resident", "data.normalize": "none"}))
    streamed = load_data(folder_config(folder, **{"data.normalize": "none"}))
    assert resident.mode == "resident" and streamed.mode == "streamed"
    assert isinstance(streamed.x_train, StreamedInputs) and streamed.input_shape == resident.input_shape
    assert streamed.sizes() == resident.sizes() and torch.equal(streamed.y_test, resident.y_test)
    # same split, same decoding: the streamed test split reads back the resident tensor
    got = torch.cat([xb for xb, _, _ in streamed.x_test.batches(7)])
    assert torch.allclose(got, resident.x_test, atol=1e-6)
    assert torch.allclose(streamed.x_train[:5], resident.x_train[:5], atol=1e-6)
    assert torch.allclose(streamed.x_test[3], resident.x_test[3], atol=1e-6)  # an index drops the dimension


def test_auto_mode_says_which_path_and_why(folder):
    cfg = folder_config(folder, **{"data.mode": "auto", "data.memory_budget_gb": 1.0})
    mode, reason = choose_mode(cfg, 18000, (3, 128, 128))
    assert mode == "streamed"
    assert reason == ("streamed: 18,000 images × 3×128×128 = 3.3 GB would not fit the 1.0 GB budget "
                      "(data.memory_budget_gb)")
    assert choose_mode(cfg, 1000, (3, 32, 32))[0] == "resident"
    bundle = load_data(cfg)
    assert bundle.mode == "resident" and bundle.mode_reason.startswith("resident: 120 images × 3×12×12")


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_stop_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path, folder, workers):
    cfg = folder_config(folder, **{"data.workers": workers, "data.augment": "crop_flip", "distill.epochs": 3,
                                   "distill.log_every": 2})
    assert_stop_mid_epoch_then_resume_equals_uninterrupted(cfg, tmp_path, max_step=5)


def test_disk_cache_is_filled_once_reused_and_deleted(tmp_path, folder):
    seen = []
    cfg = folder_config(folder, **{"distill.keep_cache": True})
    summary = engine.run(cfg, tmp_path / "run", on_event=seen.append)
    assert summary["status"] == "completed" and summary["distill"]["teacher_cache"] is True
    fills = [e for e in seen if e.kind == events.CACHE_FILL]
    assert fills[0].data["done"] == 0 and fills[-1].data["done"] == fills[-1].data["total"] == 78  # a row per image
    assert events.describe(fills[0]) == ("teacher-output cache filling: 0/78 rows, 0.0 MiB on disk "
                                         "(teacher-logits-distill.fp16)")
    assert [events.describe(e) for e in fills[1:-1]] == [None] * (len(fills) - 2)  # the GUI shows these, not the log
    cache = tmp_path / "run" / "cache" / "teacher-logits-distill.fp16"
    assert cache.is_file() and cache.stat().st_size == fills[-1].data["bytes"]
    logs = [e.data["message"] for e in seen if e.kind == events.LOG]
    assert any(m.startswith("Teacher-output cache on disk: logits of") for m in logs)
    assert any(m.startswith("Data path streamed: data.mode = \"streamed\"") for m in logs)
    assert summary["student"]["accuracy"] > 0.5  # the patterns are learnable: the streamed run learns them

    engine.run(folder_config(folder), tmp_path / "deleted")
    assert not (tmp_path / "deleted" / "cache" / "teacher-logits-distill.fp16").exists()


def test_disk_cache_matches_the_teacher_and_a_stopped_fill_resumes(tmp_path, folder):
    from kdstudio.core.errors import RunStopped
    from kdstudio.core.train.teacher_cache import DiskLogits
    x = load_data(folder_config(folder)).x_train
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 12 * 12, 3)).eval()
    control = events.RunControl()
    rows_seen = []

    def logits(xb):
        rows_seen.append(len(xb))
        if len(rows_seen) == 20:
            control.stop()  # stops before batch 21; the note counts the 16 batches synced to the disk
        return teacher(xb)
    with pytest.raises(RunStopped):
        DiskLogits(tmp_path, "distill", len(x), "fp32").fill(logits, lambda start: x.batches(2, None, start),
                                                             lambda done: None, control)
    rows_seen.clear()
    again = DiskLogits(tmp_path, "distill", len(x), "fp32")
    reused = again.fill(logits, lambda start: x.batches(2, None, start), lambda done: None, events.RunControl())
    assert reused == 32 and sum(rows_seen) == len(x) - 32  # only the missing rows were computed
    with torch.no_grad():
        want = teacher(torch.cat([xb for xb, _, _ in x.batches(64)]))
    assert torch.allclose(again.rows(0, len(x)), want, atol=1e-5)
    assert torch.allclose(again[torch.tensor([5, 0, 77])], want[[5, 0, 77]], atol=1e-5)


def test_a_corrupt_image_is_named_in_one_sentence_or_skipped(tmp_path):
    root = make_folder(tmp_path / "imgs", n=60)
    bad = root / "class1" / "00004.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    for workers in (0, 1):
        bundle = load_data(folder_config(root, **{"data.workers": workers, "data.test_fraction": 0.5}))
        with pytest.raises(KDError, match=r"^Image '.*00004\.png' cannot be read .* data\.skip_unreadable"):
            for split in (bundle.x_train, bundle.x_val, bundle.x_test):
                list(split.batches(8))
    bundle = load_data(folder_config(root, **{"data.skip_unreadable": True, "data.workers": 1}))
    n = sum(len(xb) for split in (bundle.x_train, bundle.x_val, bundle.x_test) for xb, _, _ in split.batches(8))
    assert n == 60
    skipped = bundle.x_train.skipped + bundle.x_val.skipped + bundle.x_test.skipped
    assert len(skipped) == 1 and "00004.png" in skipped[0]


def test_a_file_removed_during_the_run_is_named(tmp_path):
    root = make_folder(tmp_path / "imgs", n=60)
    bundle = load_data(folder_config(root, **{"data.workers": 1}))
    gone = Path(bundle.x_test.reader.files[int(bundle.x_test.index[3])])
    gone.unlink()
    with pytest.raises(KDError, match=f"Image '.*{gone.name}' cannot be read"):
        list(bundle.x_test.batches(8))


def test_symlink_loops_neither_hang_nor_crash(tmp_path):
    """A folder link back into its class (a directory loop) is not walked; a file link loop is an unreadable
    image named in one sentence on both paths, or skipped."""
    root = make_folder(tmp_path / "imgs", n=60)
    (root / "class0" / "again").symlink_to(root / "class0")  # os.walk does not follow it: no endless walk
    (root / "class1" / "a.png").symlink_to(root / "class1" / "b.png")
    (root / "class1" / "b.png").symlink_to(root / "class1" / "a.png")
    for mode in ("resident", "streamed"):
        cfg = folder_config(root, **{"data.mode": mode, "data.test_fraction": 0.5, "data.normalize": "none"})
        with pytest.raises(KDError, match=r"Image '.*[ab]\.png' cannot be read"):
            bundle = load_data(cfg)
            for split in (bundle.x_train, bundle.x_val, bundle.x_test):
                list(split.batches(8))
        cfg.data.skip_unreadable = True
        bundle = load_data(cfg)
        n = sum(len(split) for split in (bundle.x_train, bundle.x_val, bundle.x_test))
        assert n == (60 if mode == "resident" else 62)  # streamed: listed by name, blank inputs when read


def test_a_class_folder_without_images_is_one_sentence(tmp_path):
    root = make_folder(tmp_path / "imgs", n=30)
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(KDError, match=r"Class folder '.*empty' has no images"):
        load_data(folder_config(root))


def test_other_image_modes_stream_and_a_decompression_bomb_is_one_sentence(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "imgs", n=30)
    rgb = PIL.open(root / "class0" / "00000.png")
    rgb.convert("RGBA").save(root / "class0" / "00000.png")
    rgb.convert("P").save(root / "class0" / "00003.png")
    PIL.fromarray((np.arange(144).reshape(12, 12) * 400).astype(np.uint16)).save(root / "class1" / "00001.png")
    bundle = load_data(folder_config(root, **{"data.test_fraction": 0.4, "data.val_fraction": 0.0,
                                              "data.batch_size": 8}))
    for split in (bundle.x_train, bundle.x_test):
        for xb, _, _ in split.batches(8):
            assert xb.shape[1:] == (3, 12, 12) and torch.isfinite(xb).all()
    monkeypatch.setattr(PIL, "MAX_IMAGE_PIXELS", 60)  # 12×12 = 144 px is over twice the limit: a "bomb"
    with pytest.raises(KDError, match=r"^Image '.*\.png' cannot be read \(Image size \(144 pixels\) exceeds"):
        list(bundle.x_test.batches(8))


def test_thread_defaults_leave_cores_for_the_machine_and_the_decoders(monkeypatch, folder):
    from kdstudio.core.pipeline import single
    resident = load_data(folder_config(folder, **{"data.mode": "resident"}))
    streamed = load_data(folder_config(folder, **{"data.workers": 3}))
    cfg = folder_config(folder)
    monkeypatch.setattr(single.os, "cpu_count", lambda: 2)
    assert single.resolve_threads(cfg, resident)[0] == 1 and single.resolve_threads(cfg, streamed)[0] == 1
    monkeypatch.setattr(single.os, "cpu_count", lambda: 8)
    assert single.resolve_threads(cfg, resident) == (7, "8 cores, one left free")
    assert single.resolve_threads(cfg, streamed) == (4, "8 cores, one left free, 3 decoding")
    cfg.run.threads = 3
    assert single.resolve_threads(cfg, streamed) == (3, "run.threads = 3")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full (a disk that is always full)")
def test_a_disk_that_fills_while_the_cache_is_written_is_one_sentence(tmp_path, folder):
    from kdstudio.core.train.teacher_cache import DiskLogits
    x = load_data(folder_config(folder)).x_train
    cache = DiskLogits(tmp_path, "distill", len(x), "fp32", classes=3)
    cache.path = Path("/dev/full")
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 12 * 12, 3))
    with pytest.raises(KDError, match=r"^Writing the teacher-output cache '/dev/full' failed \(the disk is full\); "
                                      r"it needs 0 MiB: free space .* distill\.cache_teacher = false"):
        cache.fill(teacher, lambda start: x.batches(16, None, start), lambda done: None, events.RunControl())


class _DyingReader:
    """A reader whose worker process is killed (as the OOM killer would) on its third sample."""

    def __len__(self):
        return 64

    def read(self, i):
        import os
        import signal
        if i == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return torch.zeros(3, 4, 4)


def test_a_worker_that_dies_is_one_sentence_not_a_hung_run():
    x = StreamedInputs(_DyingReader(), np.arange(64), torch.zeros(64, dtype=torch.long), (3, 4, 4), workers=1)
    with pytest.raises(KDError, match=r"^A data worker process died \(DataLoader worker .*\), most often for lack "
                                      r"of memory; lower data\.workers or data\.batch_size"):
        list(x.batches(8))


def test_streamed_mode_for_a_source_that_cannot_stream_is_a_warning():
    bundle = load_data(tiny_config(**{"data.mode": "streamed"}))
    assert bundle.mode == "resident" and bundle.mode_reason.startswith("resident: 1,797 samples × 1×8×8")
    assert bundle.warnings == ['data.mode = "streamed" applies to image folders, CSV and .npy/.npz tensor files only; '
                               'the digits source is read '
                               'whole, so this run keeps its data resident.']
