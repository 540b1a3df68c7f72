"""Tensor files on the streamed path: .npy pairs and .npz (stored or compressed) memory-mapped and read per batch in
the workers, with the resident path's splits, labels and normalisation, and exact stop + resume mid-epoch."""

from pathlib import Path

import numpy as np
import pytest
import torch

from kdstudio.core import events
from kdstudio.core.config import Config
from kdstudio.core.data import load_data
from kdstudio.core.data.stream import StreamedInputs
from kdstudio.core.errors import KDError
from kdstudio.core.pipeline import engine
from tests.helpers import tiny_config, assert_stop_mid_epoch_then_resume_equals_uninterrupted


def make_arrays(n: int = 150, size: int = 8, classes: int = 3, seed: int = 0, channels_last: bool = False):
    """Learnable uint8 images: each class a pattern under noise; labels 0..classes-1."""
    rng = np.random.default_rng(seed)
    protos = rng.random((classes, 3, size, size))
    y = np.arange(n) % classes
    x = np.clip(protos[y] + 0.25 * rng.standard_normal((n, 3, size, size)), 0, 1)
    x = (x * 255).astype(np.uint8)
    return (x.transpose(0, 2, 3, 1).copy() if channels_last else x), y.astype(np.int64)


def tensors_config(path: Path, **overrides) -> Config:
    return tiny_config(**{"data.source": "tensors", "data.path": str(path), "data.batch_size": 16,
                          "data.mode": "streamed", "data.workers": 0, "teacher.epochs": 3, "distill.epochs": 2,
                          "baseline.enabled": False, "export.formats": [], "evaluate.latency_repeats": 0,
                          **overrides})


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tensors")
    x, y = make_arrays()
    np.save(root / "train_x.npy", x)
    np.save(root / "train_y.npy", y)
    np.savez(root / "stored.npz", x=x, y=y)
    np.savez_compressed(root / "packed.npz", x=x, y=y)
    xl, yl = make_arrays(channels_last=True)
    np.savez(root / "last.npz", x=xl, y=yl)
    return root


def _read_all(split: StreamedInputs) -> torch.Tensor:
    return torch.cat([xb for xb, _, _ in split.batches(7)])


@pytest.mark.parametrize("name", ["train_x.npy", "stored.npz", "packed.npz", "last.npz"])
@pytest.mark.parametrize("normalize", ["auto", "none"])
def test_streamed_bundle_equals_the_resident_one(tmp_path, files, name, normalize):
    over = {"data.normalize": normalize}
    resident = load_data(tensors_config(files / name, **{"data.mode": "resident", **over}))
    streamed = load_data(tensors_config(files / name, **over), cache_dir=tmp_path / "cache")
    assert resident.mode == "resident" and streamed.mode == "streamed"
    assert isinstance(streamed.x_train, StreamedInputs) and streamed.input_shape == resident.input_shape == (3, 8, 8)
    assert streamed.sizes() == resident.sizes() and streamed.class_names == resident.class_names
    for which in ("train", "val", "test"):
        assert torch.equal(getattr(streamed, f"y_{which}"), getattr(resident, f"y_{which}")), which
        got = _read_all(getattr(streamed, f"x_{which}"))
        assert torch.allclose(got, getattr(resident, f"x_{which}"), atol=1e-5), which
    assert np.allclose(streamed.mean, resident.mean, atol=1e-6) if normalize == "auto" else streamed.mean == []
    assert torch.allclose(streamed.x_test[3], resident.x_test[3], atol=1e-5)
    assert resident.warnings == streamed.warnings


def test_stored_npz_is_mapped_in_place_and_a_compressed_one_is_converted_once(tmp_path, files):
    stored = load_data(tensors_config(files / "stored.npz"), cache_dir=tmp_path / "cache")
    assert stored.x_train.reader.where["file"] == str(files / "stored.npz") and not (tmp_path / "cache").exists()
    assert "compressed" not in stored.mode_reason
    packed = load_data(tensors_config(files / "packed.npz"), cache_dir=tmp_path / "cache")
    converted = list((tmp_path / "cache").glob("tensors-packed-*-x.npy"))
    assert len(converted) == 1 and packed.x_train.reader.where["file"] == str(converted[0])
    assert "'x' in 'packed.npz' is compressed, so it cannot be memory-mapped; this run converted it once to" \
        in packed.mode_reason
    again = load_data(tensors_config(files / "packed.npz"), cache_dir=tmp_path / "cache")
    assert "this run reuses its conversion" in again.mode_reason
    assert list((tmp_path / "cache").glob("*")) == converted  # no second copy, no .part left


def test_auto_mode_streams_tensor_files_over_the_budget(files):
    cfg = tensors_config(files / "train_x.npy", **{"data.mode": "auto", "data.memory_budget_gb": 1e-6})
    bundle = load_data(cfg)
    assert bundle.mode == "streamed"
    assert bundle.mode_reason.startswith("streamed: 150 samples × 3×8×8 = 112.5 KB would not fit")
    cfg.data.memory_budget_gb = 1.0
    bundle = load_data(cfg)
    assert bundle.mode == "resident" and bundle.mode_reason.startswith("resident: 150 samples × 3×8×8")


def test_a_pt_file_asked_to_stream_is_read_whole_with_a_warning(tmp_path):
    x, y = make_arrays()
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, tmp_path / "d.pt")
    bundle = load_data(tensors_config(tmp_path / "d.pt"))
    assert bundle.mode == "resident"
    assert bundle.warnings == ['data.mode = "streamed" applies to image folders, CSV and .npy/.npz tensor files only; '
                               '.pt files are read whole, so this run keeps its data resident.']


def test_a_npy_without_its_labels_file_is_one_sentence(tmp_path):
    x, _ = make_arrays()
    np.save(tmp_path / "images.npy", x)
    np.save(tmp_path / "x.npy", x)
    for mode in ("resident", "streamed"):
        with pytest.raises(KDError, match=r"^Tensor file '.*images\.npy' is a single \.npy; name the inputs x\.npy"):
            load_data(tensors_config(tmp_path / "images.npy", **{"data.mode": mode}))
    with pytest.raises(KDError, match=r"^The labels of '.*x\.npy' belong in '.*y\.npy', which does not exist"):
        load_data(tensors_config(tmp_path / "x.npy", **{"data.mode": "resident"}))
    with pytest.raises(KDError, match=r"^Labels file '.*y\.npy' cannot be read"):
        load_data(tensors_config(tmp_path / "x.npy"))


def test_a_nan_sample_is_named_when_its_batch_is_read(tmp_path):
    x, y = make_arrays()
    x = x.astype(np.float32) / 255
    x[5, 0, 0, 0] = np.nan
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    bundle = load_data(tensors_config(tmp_path / "x.npy", **{"data.normalize": "none", "data.workers": 1}))
    with pytest.raises(KDError, match=r"^Sample 5 of '.*x\.npy' contains NaN or infinite values; clean the data\."):
        for split in (bundle.x_train, bundle.x_val, bundle.x_test):
            list(split.batches(8))


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_tensors_stop_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path, files, workers):
    cfg = tensors_config(files / "packed.npz", **{"data.workers": workers, "data.augment": "crop_flip",
                                                  "distill.epochs": 3, "distill.log_every": 2})
    engine.run(cfg, tmp_path / "full")
    assert list((tmp_path / "full" / "cache").glob("tensors-packed-*-x.npy"))  # converted into the run folder
    assert_stop_mid_epoch_then_resume_equals_uninterrupted(cfg, tmp_path, max_step=6)
    if workers == 0:  # a finished run reloads with the same split, from the conversion it made
        from kdstudio.core.outputs.artifacts import load_run
        loaded = load_run(tmp_path / "part", variants=False)
        assert loaded.data.mode == "streamed" and "reuses its conversion" in loaded.data.mode_reason
        assert str(tmp_path / "part" / "cache") in loaded.data.x_test.reader.where["file"]


def test_a_streamed_tensors_run_learns_with_the_disk_teacher_cache(tmp_path, files):
    seen = []
    summary = engine.run(tensors_config(files / "train_x.npy", **{"teacher.epochs": 6}), tmp_path / "run",
                         on_event=seen.append)
    assert summary["status"] == "completed" and summary["distill"]["teacher_cache"] is True
    logs = [e.data["message"] for e in seen if e.kind == events.LOG]
    assert any(m.startswith("Data path streamed: data.mode = \"streamed\" (150 samples × 3×8×8") for m in logs)
    assert summary["student"]["accuracy"] > 0.5


def test_separate_val_and_test_files_stream_like_the_resident_path(tmp_path):
    for i, part in enumerate(("train", "val", "test")):
        x, y = make_arrays(n=60 if part != "train" else 120, seed=i)
        np.save(tmp_path / f"{part}_x.npy", x)
        np.save(tmp_path / f"{part}_y.npy", y)
    over = {"data.val_path": str(tmp_path / "val_x.npy"), "data.test_path": str(tmp_path / "test_x.npy")}
    resident = load_data(tensors_config(tmp_path / "train_x.npy", **{"data.mode": "resident", **over}))
    streamed = load_data(tensors_config(tmp_path / "train_x.npy", **over))
    assert streamed.sizes() == resident.sizes() == {"train": 120, "val": 60, "test": 60}
    for which in ("train", "val", "test"):
        assert torch.equal(getattr(streamed, f"y_{which}"), getattr(resident, f"y_{which}")), which
        assert torch.allclose(_read_all(getattr(streamed, f"x_{which}")), getattr(resident, f"x_{which}"), atol=1e-5)


def test_flat_features_stream_with_per_feature_statistics(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(100) % 2
    x = (rng.standard_normal((100, 5)) * [1, 10, 100, 0.1, 3] + y[:, None]).astype(np.float32)
    np.savez(tmp_path / "flat.npz", x=x, y=y)
    resident = load_data(tensors_config(tmp_path / "flat.npz", **{"data.mode": "resident"}))
    streamed = load_data(tensors_config(tmp_path / "flat.npz"))
    assert streamed.input_shape == resident.input_shape == (5,)
    assert np.allclose(streamed.std, resident.std, rtol=1e-5)
    assert torch.allclose(_read_all(streamed.x_train), resident.x_train, atol=1e-5)


def test_training_statistics_read_in_many_chunks_equal_the_whole_split(monkeypatch, files):
    from kdstudio.core.data import tensor_stream
    monkeypatch.setattr(tensor_stream, "STATS_CHUNK_BYTES", 8 * 3 * 8 * 8 * 7)  # 7 samples a chunk
    resident = load_data(tensors_config(files / "stored.npz", **{"data.mode": "resident"}))
    streamed = load_data(tensors_config(files / "stored.npz"))
    assert np.allclose(streamed.mean, resident.mean, atol=1e-6) and np.allclose(streamed.std, resident.std, atol=1e-6)
