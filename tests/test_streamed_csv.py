"""CSV on the streamed path: converted once, in chunks, into a memory-mapped cache, then read per batch; the same
samples, labels and class names as the resident path, and the same sentences for bad rows."""

import numpy as np
import pytest
import torch

from kdstudio.core.data import csv as csv_source
from kdstudio.core.data import load_data
from kdstudio.core.data.stream import iter_batches
from kdstudio.core.errors import KDError
from kdstudio.core.pipeline import engine
from tests.helpers import tiny_config


def _table(path, n=90, named=True, seed=0):
    rng = np.random.default_rng(seed)
    names = ["setosa", "virginica", "versicolor"]
    lines = ["w;label;h;d"]
    for i in range(n):
        c = i % 3
        lines.append(f"{rng.normal(c, 0.3):.5f};{names[c] if named else c};{rng.normal(-c, 0.3):.5f};{i % 7}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _cfg(path, mode, **more):
    return tiny_config(**{"data.source": "csv", "data.path": str(path), "data.mode": mode, "data.batch_size": 8,
                          "data.workers": 0, "student.arch": "mlp", "teacher.arch": "mlp", **more})


@pytest.mark.parametrize("named", [True, False])
def test_streamed_csv_equals_resident(tmp_path, named):
    f = _table(tmp_path / "t.csv", named=named)
    resident = load_data(_cfg(f, "resident"))
    streamed = load_data(_cfg(f, "streamed"), cache_dir=tmp_path / "cache")
    assert streamed.mode == "streamed" and "converted once to" in streamed.mode_reason
    assert streamed.class_names == resident.class_names
    for split in ("train", "val", "test"):
        a, b = getattr(resident, f"x_{split}"), getattr(streamed, f"x_{split}")
        assert torch.allclose(a, torch.cat(list(iter_batches(b, 16))), atol=1e-5)
        assert torch.equal(getattr(resident, f"y_{split}"), getattr(streamed, f"y_{split}"))
    again = load_data(_cfg(f, "streamed"), cache_dir=tmp_path / "cache")
    assert "reuses its conversion" in again.mode_reason


def test_conversion_in_chunks_names_the_bad_row_and_leaves_no_half_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_source, "CHUNK_ROWS", 7)
    f = _table(tmp_path / "t.csv", n=40)
    lines = f.read_text().splitlines()
    lines[30] = lines[30].replace(";", ";x", 1).split(";")[0] + ";setosa;oops;1"  # data row 30: a word
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(KDError, match=r"column 'h' has 'oops', which is not a number \(data row 30\)"):
        load_data(_cfg(f, "streamed"), cache_dir=tmp_path / "cache")
    with pytest.raises(KDError, match=r"\(data row 30\)"):
        load_data(_cfg(f, "resident"))  # the same sentence on both paths
    assert not list((tmp_path / "cache").glob("*"))


def test_a_run_on_a_streamed_csv_completes(tmp_path):
    f = _table(tmp_path / "t.csv", n=300)
    s = engine.run(_cfg(f, "streamed", **{"export.formats": [], "evaluate.latency_repeats": 0, "teacher.epochs": 8,
                                          "teacher.width": 64, "teacher.lr": 1e-2, "distill.epochs": 4,
                                          "data.batch_size": 32}), tmp_path / "run")
    assert s["status"] == "completed" and s["data"]["mode"] == "streamed"
    assert s["student"]["accuracy"] > 0.5
    assert not list((tmp_path / "run" / "cache").glob("*.part"))
