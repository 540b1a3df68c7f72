"""Data sources round-trip from small files made here; every data check of issue 5 point 4 is one clear sentence."""

import builtins

import numpy as np
import pytest
import torch

from kdstudio.core import config
from kdstudio.core.config import Config
from kdstudio.core.data import load_data
from kdstudio.core.errors import ConfigError, KDError

try:
    from PIL import Image as PIL
except ImportError:  # only the image-folder tests need Pillow
    PIL = None
needs_pillow = pytest.mark.skipif(PIL is None, reason="image folders need Pillow (pip install pillow)")


def cfg_for(source, path, **data):
    cfg = Config()
    cfg.data.source, cfg.data.path, cfg.data.batch_size, cfg.data.normalize = source, str(path), 8, "none"
    for k, v in data.items():
        setattr(cfg.data, k, v)
    config.validate(cfg)
    return cfg


def all_rows(b):
    return torch.cat([b.x_train, b.x_val, b.x_test]), torch.cat([b.y_train, b.y_val, b.y_test])


def ids_images(n=60, k=3):
    """(n, 1, 4, 4) images whose first pixel is the sample id, labels id % k."""
    x = torch.rand(n, 1, 4, 4)
    x[:, 0, 0, 0] = torch.arange(n, dtype=torch.float32)
    return x, torch.arange(n) % k


# ---- tensors ---------------------------------------------------------------------------------------------

def test_npz_round_trip_keeps_every_sample_with_its_label(tmp_path):
    x, y = ids_images()
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy(), class_names=np.array(["a", "b", "c"]))
    b = load_data(cfg_for("tensors", tmp_path / "d.npz"))
    xs, ys = all_rows(b)
    ids = xs[:, 0, 0, 0].long()
    assert sorted(ids.tolist()) == list(range(60))
    assert torch.equal(ys, y[ids]) and torch.allclose(xs, x[ids])
    assert b.class_names == ["a", "b", "c"] and b.input_shape == (1, 4, 4)
    assert sum(b.sizes().values()) == 60 and b.sizes()["test"] == 12


def test_pt_dict_and_pair_round_trip(tmp_path):
    x, y = ids_images()
    torch.save({"x": x, "y": y}, tmp_path / "d.pt")
    torch.save((x, y), tmp_path / "pair.pth")
    for f in ("d.pt", "pair.pth"):
        xs, ys = all_rows(load_data(cfg_for("tensors", tmp_path / f)))
        assert torch.equal(ys, y[xs[:, 0, 0, 0].long()])


def test_uint8_channels_last_images_are_scaled_and_transposed(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (40, 6, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "img.npz", x=x, y=np.arange(40) % 2)
    b = load_data(cfg_for("tensors", tmp_path / "img.npz"))
    assert b.input_shape == (3, 6, 6) and 0 <= float(b.x_train.min()) and float(b.x_train.max()) <= 1
    assert any("channels-last" in w for w in b.warnings)


def test_separate_split_files(tmp_path):
    x, y = ids_images(40)
    np.savez(tmp_path / "tr.npz", x=x.numpy(), y=y.numpy())
    np.savez(tmp_path / "va.npz", x=x[:9].numpy(), y=y[:9].numpy())
    b = load_data(cfg_for("tensors", tmp_path / "tr.npz", val_path=str(tmp_path / "va.npz")))
    assert b.sizes() == {"train": 32, "val": 9, "test": 8}  # 20% of 40, spread over the classes (14, 13, 13)


@pytest.mark.parametrize("content,match", [
    ({"x": np.zeros((10, 4)), "labels": np.zeros(10)}, "needs 'x' \\(inputs\\) and 'y' \\(labels\\)"),
    ({"x": np.zeros((10, 4)), "y": np.eye(10)}, "one class index per sample.*one-hot"),
    ({"x": np.zeros((10, 4)), "y": np.zeros(9)}, "'x' has 10 samples but 'y' has 9"),
    ({"x": np.zeros((10, 4)), "y": np.full(10, 0.5)}, "fractional values"),
    ({"x": np.full((10, 4), np.nan), "y": np.zeros(10)}, "NaN or infinite"),
])
def test_bad_tensor_files_say_what_is_wrong(tmp_path, content, match):
    np.savez(tmp_path / "d.npz", **content)
    with pytest.raises(KDError, match=match):
        load_data(cfg_for("tensors", tmp_path / "d.npz", batch_size=1))


def test_corrupt_missing_and_unsafe_tensor_files(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(KDError, match="cannot be read as .npz"):
        load_data(cfg_for("tensors", tmp_path / "bad.npz"))
    with pytest.raises(KDError, match="does not exist"):
        load_data(cfg_for("tensors", tmp_path / "nope.pt"))
    torch.save({"x": torch.zeros(3, 2), "y": torch.zeros(3), "extra": Config()}, tmp_path / "obj.pt")
    with pytest.raises(KDError, match="objects other than tensors"):
        load_data(cfg_for("tensors", tmp_path / "obj.pt"))
    (tmp_path / "d.txt").write_text("1,2")
    with pytest.raises(KDError, match="must end in .npz, .npy, .pt or .pth"):
        load_data(cfg_for("tensors", tmp_path / "d.txt"))


def test_smaller_than_one_batch(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((20, 3)), y=np.arange(20) % 2)
    with pytest.raises(KDError, match="fewer than one batch of 64; lower data.batch_size"):
        load_data(cfg_for("tensors", tmp_path / "d.npz", batch_size=64))


# ---- CSV -------------------------------------------------------------------------------------------------

def write_csv(path, header, rows, sep=","):
    path.write_text("\n".join([sep.join(header)] + [sep.join(map(str, r)) for r in rows]) + "\n")
    return path


def test_csv_with_named_labels_in_any_column(tmp_path):
    rows = [[i, ["cat", "dog"][i % 2], i * 2.5, -i] for i in range(30)]
    f = write_csv(tmp_path / "t.csv", ["id", "species", "w", "h"], rows, sep=";")
    b = load_data(cfg_for("csv", f, label_column="species"))
    xs, ys = all_rows(b)
    assert b.class_names == ["cat", "dog"] and b.input_shape == (3,)
    ids = xs[:, 0].long()
    assert torch.equal(ys, ids % 2) and torch.allclose(xs[:, 1], ids * 2.5)


def test_csv_integer_labels_are_class_indices_and_features_are_standardised(tmp_path):
    rows = [[i % 3, i, 1000 * i] for i in range(30)]
    f = write_csv(tmp_path / "t.csv", ["label", "a", "b"], rows)
    cfg = cfg_for("csv", f)
    cfg.data.normalize = "auto"
    b = load_data(cfg)
    assert b.class_names == ["0", "1", "2"]
    assert torch.allclose(b.x_train.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(b.x_train.std(0), torch.ones(2), atol=1e-5)


def test_csv_missing_label_column_names_the_columns(tmp_path):
    f = write_csv(tmp_path / "t.csv", ["a", "b", "target"], [[1, 2, 0]] * 20)
    with pytest.raises(ConfigError, match="has no column 'label'; its columns are a, b, target"):
        load_data(cfg_for("csv", f))
    with pytest.raises(ConfigError, match="did you mean 'target'"):
        load_data(cfg_for("csv", f, label_column="targt"))


def test_csv_non_numeric_feature_names_column_and_row(tmp_path):
    rows = [[1, 2, 0]] * 5 + [[1, "red", 1]] + [[1, 2, 1]] * 5
    f = write_csv(tmp_path / "t.csv", ["a", "colour", "label"], rows)
    with pytest.raises(KDError, match="column 'colour' has 'red', which is not a number \\(data row 6\\)"):
        load_data(cfg_for("csv", f))
    f.write_text("a,b,label\n1,,0\n")
    with pytest.raises(KDError, match="column 'b' is empty"):
        load_data(cfg_for("csv", f))
    f.write_text("a,b,label\n1,2\n")
    with pytest.raises(KDError, match="line 2 has 2 values but the header has 3 columns"):
        load_data(cfg_for("csv", f))


# ---- image folders ---------------------------------------------------------------------------------------

def make_folder(root, classes=("cat", "dog"), n=12, size=(10, 10), mode="RGB", fmt="png"):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            PIL.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / c / f"{i}.{fmt}")
    return root


@needs_pillow
def test_folder_round_trip_png_pixels_and_class_names(tmp_path):
    root = make_folder(tmp_path / "d")
    b = load_data(cfg_for("folder", root))
    assert b.class_names == ["cat", "dog"] and b.input_shape == (3, 10, 10)
    x0 = torch.from_numpy(np.asarray(PIL.open(root / "cat" / "0.png"))).permute(2, 0, 1).float() / 255
    xs, ys = all_rows(b)
    match = [(i, int(ys[i])) for i in range(len(xs)) if torch.allclose(xs[i], x0)]
    assert match and match[0][1] == 0 and len(xs) == 24


@needs_pillow
def test_folder_grey_jpeg_resize_and_colour_mixing(tmp_path):
    root = make_folder(tmp_path / "d", mode="L", fmt="jpg", size=(20, 14))
    b = load_data(cfg_for("folder", root, image_size=8))
    assert b.input_shape == (1, 8, 8)
    make_folder(tmp_path / "d", classes=("eel",), n=12, mode="RGB", fmt="jpeg", size=(9, 9))
    b = load_data(cfg_for("folder", root, image_size=8))
    assert b.input_shape == (3, 8, 8) and b.class_names == ["cat", "dog", "eel"]


@needs_pillow
def test_folder_split_folders_auto_and_explicit(tmp_path):
    for split, n in (("train", 12), ("val", 3), ("test", 4)):
        make_folder(tmp_path / "d" / split, n=n)
    b = load_data(cfg_for("folder", tmp_path / "d"))
    assert b.sizes() == {"train": 24, "val": 6, "test": 8}
    b = load_data(cfg_for("folder", tmp_path / "d" / "train", val_path=str(tmp_path / "d" / "test")))
    assert b.sizes()["val"] == 8 and b.sizes()["test"] == 5 and b.sizes()["train"] == 19  # 20% of 24 -> 5
    make_folder(tmp_path / "d" / "val", classes=("owl",), n=2)
    with pytest.raises(KDError, match="has class 'owl', which the training data .* does not have"):
        load_data(cfg_for("folder", tmp_path / "d"))


@needs_pillow
def test_folder_empty_class_folder(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("x")
    with pytest.raises(KDError, match="Class folder '.*empty' has no images"):
        load_data(cfg_for("folder", root))


@needs_pillow
def test_folder_unreadable_image_named_or_skipped(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(KDError, match="Image '.*broken.png' cannot be read .*data.skip_unreadable"):
        load_data(cfg_for("folder", root))
    b = load_data(cfg_for("folder", root, skip_unreadable=True))
    assert sum(b.sizes().values()) == 24 and "broken.png" in b.warnings[0]


@needs_pillow
def test_folder_mixed_sizes_need_resize(tmp_path):
    root = make_folder(tmp_path / "d")
    PIL.fromarray(np.zeros((7, 5, 3), dtype=np.uint8)).save(root / "dog" / "odd.png")
    with pytest.raises(KDError, match="different sizes: .* is 10×10 but '.*odd.png' is 5×7; set data.image_size"):
        load_data(cfg_for("folder", root))
    assert load_data(cfg_for("folder", root, image_size=6)).input_shape == (3, 6, 6)


def test_folder_without_class_subfolders_and_missing_folder(tmp_path):
    (tmp_path / "flat").mkdir()
    with pytest.raises(KDError, match="has no class sub-folders"):
        load_data(cfg_for("folder", tmp_path / "flat"))
    with pytest.raises(KDError, match="does not exist"):
        load_data(cfg_for("folder", tmp_path / "nope"))


def test_folder_without_pillow_says_how_to_install(tmp_path, monkeypatch):
    real = builtins.__import__

    def no_pil(name, *a, **k):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real(name, *a, **k)
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "1.png").write_bytes(b"")
    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(KDError, match="need Pillow, which is not installed; install it with `pip install pillow`"):
        load_data(cfg_for("folder", tmp_path))


# ---- class names, normalisation --------------------------------------------------------------------------

@needs_pillow
def test_class_names_map_the_data_onto_the_teacher_order(tmp_path):
    root = make_folder(tmp_path / "d")
    plain = load_data(cfg_for("folder", root))
    mapped = load_data(cfg_for("folder", root, class_names=["bird", "dog", "cat"]))
    assert mapped.class_names == ["bird", "dog", "cat"] and mapped.num_classes == 3
    assert torch.equal(mapped.y_train, torch.tensor([2, 1])[plain.y_train])
    with pytest.raises(ConfigError, match="The data's class 'cat' is not in data.class_names"):
        load_data(cfg_for("folder", root, class_names=["dog", "bird"]))
    with pytest.raises(ConfigError, match="lists 'dog' more than once"):
        load_data(cfg_for("folder", root, class_names=["dog", "cat", "dog"]))


def test_class_names_name_unnamed_integer_labels(tmp_path):
    x, y = ids_images()
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())
    b = load_data(cfg_for("tensors", tmp_path / "d.npz", class_names=["x", "y", "z"]))
    assert b.class_names == ["x", "y", "z"] and torch.equal(b.y_train, y[b.x_train[:, 0, 0, 0].long()])
    with pytest.raises(ConfigError, match="has 2 names but the labels go up to 2"):
        load_data(cfg_for("tensors", tmp_path / "d.npz", class_names=["x", "y"]))


def test_auto_normalisation_uses_training_statistics_and_checks_channels(tmp_path):
    x = torch.rand(80, 3, 4, 4) * 5 + 2
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=(torch.arange(80) % 2).numpy())
    b = load_data(cfg_for("tensors", tmp_path / "d.npz", normalize="auto"))
    m = b.x_train.mean(dim=(0, 2, 3))
    assert torch.allclose(m, torch.zeros(3), atol=1e-5) and len(b.mean) == 3
    np.savez(tmp_path / "g.npz", x=x[:, :1].numpy(), y=(torch.arange(80) % 2).numpy())
    with pytest.raises(ConfigError, match="imagenet.* gives 3 values but the inputs have 1 channels"):
        load_data(cfg_for("tensors", tmp_path / "g.npz", normalize="imagenet"))


def test_image_size_on_flat_features_is_refused(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((20, 3)), y=np.arange(20) % 2)
    with pytest.raises(ConfigError, match="data.image_size = 8 resizes images"):
        load_data(cfg_for("tensors", tmp_path / "d.npz", image_size=8))


def test_preview_counts_and_grid_show_the_original_pixels(tmp_path):
    from kdstudio.core.data.preview import class_counts, sample_grid
    x, y = ids_images()
    x[:, 0, 0, 0] /= 100  # ids as pixels in [0, 0.59]: every image stays in [0, 1]
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())
    b = load_data(cfg_for("tensors", tmp_path / "d.npz", normalize="auto"))
    counts = class_counts(b)
    assert [sum(v) for v in zip(*counts.values())] == [20, 20, 20] and counts["test"] == [4, 4, 4]
    grid = sample_grid(b, per_class=5)
    assert grid["images"].shape == (3, 5, 1, 4, 4) and grid["counts"] == [5, 5, 5]
    i = grid["indices"][1][0]
    original = x[int(round(float(b.x_train[i, 0, 0, 0] * b.std[0] + b.mean[0]) * 100))]
    assert torch.allclose(grid["images"][1, 0], original, atol=1e-5) and int(b.y_train[i]) == 1
