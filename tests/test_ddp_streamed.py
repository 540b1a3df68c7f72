"""Streamed data on 2 processes (torchrun + DDP, gloo): an image folder read per batch, each rank reading its shard,
the disk teacher cache filled by each rank for its own block of rows, validation and test counted exactly."""

import json
import re
import subprocess
import sys

import pytest

from kdstudio.core import config
from kdstudio.core.pipeline import engine
from tests.test_ddp import ENV
from tests.test_streamed import folder_config, make_folder

PER_PROCESS_BATCH = 16  # 2 processes × 16 = the one-process run's 32


@pytest.fixture(scope="module")
def streamed_runs(tmp_path_factory):
    """(DDP run folder, one-process run folder) on the same streamed image folder, the same global batch."""
    # 114 images: 74 train, 17 val, 23 test; odd splits give the ranks blocks of unequal size
    images = make_folder(tmp_path_factory.mktemp("imgs"), n=114, size=8)
    cfg = folder_config(images, **{"device": "cpu", "teacher.epochs": 6, "distill.epochs": 3,
                                   "distill.keep_cache": True})
    cfg_path = tmp_path_factory.mktemp("cfg") / "folder.toml"
    config.save(cfg, cfg_path)
    out = tmp_path_factory.mktemp("ddp") / "run"
    done = subprocess.run([sys.executable, "-m", "kdstudio", "run", str(cfg_path), "--out", str(out), "--nproc", "2",
                           "--set", f"data.batch_size={PER_PROCESS_BATCH}"], env=ENV, capture_output=True,
                          text=True, timeout=240, cwd=out.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    one = tmp_path_factory.mktemp("one") / "run"
    cfg.data.batch_size = 2 * PER_PROCESS_BATCH
    engine.run(cfg, one)
    return out, one


def _summary(folder):
    return json.loads((folder / "summary.json").read_text())


def test_streamed_folder_on_two_processes_matches_one_process(streamed_runs):
    out, one = streamed_runs
    ddp, single = _summary(out), _summary(one)
    assert ddp["status"] == "completed" and ddp["device"] == "cpu × 2 processes (gloo)"
    assert ddp["data"]["mode"] == single["data"]["mode"] == "streamed"
    assert sorted(p.name for p in out.parent.iterdir()) == ["run", "teachers"]  # one run folder (rank 0's)
    for who in ("teacher", "student"):
        assert ddp[who]["accuracy"] > 0.5 and abs(ddp[who]["accuracy"] - single[who]["accuracy"]) <= 0.15, who
    # the test accuracies the training ranks summed from their blocks of the streamed test split are exactly the
    # ones rank 0 alone counted over the whole split afterwards (evaluate stage)
    evaluation = json.loads((out / "evaluation.json").read_text())
    for who in ("teacher", "student"):
        assert ddp[who]["accuracy"] == pytest.approx(evaluation["models"][who]["top1"], abs=1e-9), who


def test_each_rank_fills_the_disk_cache_for_its_own_block(streamed_runs):
    out, _ = streamed_runs
    log = (out / "log.txt").read_text()
    line = next(x for x in log.splitlines() if "Teacher-output cache on disk: logits of" in x)
    found = re.search(r"logits of ([\d,]+) training samples .* filled by 2 processes: ([\d,]+) \+ ([\d,]+) samples",
                      line)
    assert found, line
    total, *parts = (int(g.replace(",", "")) for g in found.groups())
    assert sum(parts) == total and max(parts) - min(parts) <= 1  # no rank computed the whole cache
    cache = out / "cache"
    assert sorted(p.name for p in cache.glob("teacher-logits-distill*")) == [
        "teacher-logits-distill.fp16", f"teacher-logits-distill.rows0-{parts[0]}.json",
        f"teacher-logits-distill.rows{parts[0]}-{total}.json"]  # one file, a note per rank's block
    # every row was written: the cache agrees with the teacher on the training samples
    import numpy as np
    rows = np.fromfile(cache / "teacher-logits-distill.fp16", dtype=np.float16).reshape(total, -1)
    assert np.isfinite(rows).all() and (np.abs(rows).sum(axis=1) > 0).all()


def test_blocks_of_one_cache_file_fill_and_resume_apart(tmp_path):
    """Two ranks' blocks, filled one after the other here: one file equal to the teacher's rows; a block's stopped
    fill resumes from its own note and never touches the other block."""
    import torch
    from kdstudio.core import events
    from kdstudio.core.data import load_data
    from kdstudio.core.errors import RunStopped
    from kdstudio.core.train.teacher_cache import DiskLogits
    x = load_data(folder_config(make_folder(tmp_path / "imgs", n=60, size=4))).x_train
    n = len(x)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3)).eval()
    seen, control = [], events.RunControl()

    def logits(xb):
        seen.append(len(xb))
        if len(seen) == 18:
            control.stop()  # the first block stops after 16 batches synced to the disk (and 2 more not counted)
        return teacher(xb)
    blocks = [(0, n // 2), (n // 2, n)]
    first = DiskLogits(tmp_path / "cache", "distill", n, "fp32", 3, rows=blocks[0])
    first.prepare_shared()
    with pytest.raises(RunStopped):
        first.fill(logits, lambda start: x.batches(1, None, start, blocks[0][1]), lambda done: None, control)
    seen.clear()
    for lo_hi in blocks:
        part = DiskLogits(tmp_path / "cache", "distill", n, "fp32", 3, rows=lo_hi)
        part.prepare_shared()  # the file of the right size is kept (the notes say what is in it)
        reused = part.fill(logits, lambda start: x.batches(1, None, start), lambda done: None, events.RunControl())
        assert reused == (16 if lo_hi == blocks[0] else 0)
    assert sum(seen) == n - 16  # each block computed only its own missing rows
    with torch.no_grad():
        want = teacher(torch.cat([xb for xb, _, _ in x.batches(64)]))
    assert torch.allclose(part.rows(0, n), want, atol=1e-5)
    part.delete()
    assert not list((tmp_path / "cache").iterdir())  # the file and both blocks' notes


@pytest.mark.parametrize("n", [74, 75])
def test_each_ranks_shard_and_block_are_disjoint_and_cover_the_split(monkeypatch, n):
    """What every rank computes from the same seed, as rank 0 and rank 1 of 2: one epoch permutation; training
    shards disjoint and together the epoch (less the n % 2 that drop-last skips); cache and evaluation blocks
    disjoint and together every sample."""
    import torch
    from kdstudio.core.train import distributed
    monkeypatch.setattr(distributed, "active", lambda: True)
    monkeypatch.setattr(distributed._state, "world", 2)
    shards, blocks = [], []
    for r in (0, 1):
        monkeypatch.setattr(distributed._state, "rank", r)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(7))  # the loop's seeded generator
        shards.append(distributed.shard(perm))
        blocks.append(range(*distributed.block(n)))
    assert len(shards[0]) == len(shards[1]) == distributed.shard_size(n) == n // 2  # the same steps on each rank
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    assert sorted(shards[0].tolist() + shards[1].tolist()) == sorted(perm[:2 * (n // 2)].tolist())
    assert list(blocks[0]) + list(blocks[1]) == list(range(n))
