"""Per-sample augmentation in the data workers of the streamed path: rrc_flip (and torchvision's RandAugment and
TrivialAugment when it imports), seeded per (seed, epoch, sample position) so the worker count and a stop + resume
change nothing; resident data refuses these kinds with one sentence."""

import sys

import numpy as np
import pytest
import torch

from kdstudio.core import events
from kdstudio.core.data import load_data
from kdstudio.core.data.augment import SampleAugment, rrc_flip, sample_seed
from kdstudio.core.data.stream import TrainStream
from kdstudio.core.errors import ConfigError
from kdstudio.core.pipeline import engine
from tests.helpers import tiny_config, assert_stop_mid_epoch_then_resume_equals_uninterrupted
from tests.test_streamed_tensors import make_arrays, tensors_config


def _has_torchvision() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - missing, or built for another torch
        return False
    return True


@pytest.fixture(scope="module")
def npy(tmp_path_factory):
    root = tmp_path_factory.mktemp("aug")
    x, y = make_arrays(n=150, size=12)
    np.save(root / "x.npy", x)
    np.save(root / "y.npy", y)
    return root / "x.npy"


def test_rrc_flip_keeps_the_size_draws_by_seed_and_crops_the_image():
    x = torch.arange(3 * 16 * 20, dtype=torch.float32).reshape(3, 16, 20) / 960
    a = rrc_flip(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape
    assert torch.equal(a, rrc_flip(x, torch.Generator().manual_seed(1)))
    outs = [rrc_flip(x, torch.Generator().manual_seed(s)) for s in range(8)]
    assert len({o.sum().item() for o in outs}) == 8  # each seed a different crop
    const = torch.full((3, 16, 20), 0.25)
    assert torch.allclose(rrc_flip(const, torch.Generator().manual_seed(3)), const)  # a crop of flat colour is flat
    assert sample_seed(0, 1, 5) != sample_seed(0, 2, 5) != sample_seed(0, 1, 6)


def test_each_sample_depends_on_seed_epoch_and_position_not_on_the_worker(npy):
    got = {}
    for workers in (0, 2):
        x = load_data(tensors_config(npy, **{"data.workers": workers, "data.normalize": "none"})).x_train
        stream = TrainStream(x, torch.device("cpu"), "rrc_flip", seed=7)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        got[workers] = [torch.cat([xb for xb, _, _ in stream.epoch(perm, 16, 0, 4, epoch=e)]) for e in (0, 1)]
        del stream
    assert torch.equal(got[0][0], got[2][0]) and torch.equal(got[0][1], got[2][1])
    assert not torch.equal(got[0][0], got[0][1])  # a new epoch draws new crops
    plain = load_data(tensors_config(npy, **{"data.normalize": "none"})).x_train
    first = int(perm[0])
    want = SampleAugment("rrc_flip", 7)(plain.reader.read(int(plain.index[first])), 1, first)
    assert torch.equal(got[2][1][0], want)


def test_streamed_rrc_flip_stop_mid_epoch_then_resume_with_two_workers_equals_an_uninterrupted_run(tmp_path, npy):
    seen = []
    cfg = tensors_config(npy, **{"data.workers": 2, "data.augment": "rrc_flip", "distill.epochs": 3,
                                 "teacher.skip_sanity_check": True,  # 3 epochs under strong crops: near chance
                                 "distill.log_every": 2})
    summary = engine.run(cfg, tmp_path / "full", on_event=seen.append)
    assert summary["distill"]["teacher_cache"] is False
    logs = [e.data["message"] for e in seen if e.kind == events.LOG]
    assert any("augmentation 'rrc_flip' changes the inputs every epoch" in m for m in logs)
    assert_stop_mid_epoch_then_resume_equals_uninterrupted(cfg, tmp_path)


def test_auto_mode_streams_for_a_per_sample_kind_and_resident_data_refuses_it(npy):
    bundle = load_data(tensors_config(npy, **{"data.mode": "auto", "data.augment": "rrc_flip"}))
    assert bundle.mode == "streamed"
    assert bundle.mode_reason.startswith('streamed: data.augment = "rrc_flip" augments each sample in the data '
                                         'workers (150 samples')
    with pytest.raises(ConfigError, match=r'^data\.augment = "rrc_flip" augments each sample in the data workers '
                                          r'of the streamed path, but this tensors data is resident; set '
                                          r'data\.mode = "streamed"'):
        load_data(tensors_config(npy, **{"data.mode": "resident", "data.augment": "rrc_flip"}))
    with pytest.raises(ConfigError, match=r"but this digits data is resident"):
        load_data(tiny_config(**{"data.augment": "rrc_flip"}))
    from kdstudio.core import config
    assert dict(config.problems(tiny_config(**{"data.augment": "rrc_flip"})))["data.augment"] == (
        'data.augment = "rrc_flip" augments each sample in the data workers of the streamed path, but the digits '
        'source is read whole; set data.mode = "streamed" (image folders and .npy/.npz tensor files), or use '
        'crop_flip, which runs on the device.')
    assert "data.augment" not in dict(config.problems(tensors_config(npy, **{"data.augment": "rrc_flip"})))


def test_randaugment_without_torchvision_is_one_sentence(npy, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as where it is missing (import raises ImportError)
    for kind in ("randaugment", "trivialaugment"):
        with pytest.raises(ConfigError, match=rf'^data\.augment = "{kind}" needs torchvision, which does not import '
                                              r"here \(.*\); pip install torchvision"):
            load_data(tensors_config(npy, **{"data.augment": kind}))


@pytest.mark.skipif(not _has_torchvision(), reason="needs torchvision (pip install torchvision)")
@pytest.mark.parametrize("kind", ["randaugment", "trivialaugment"])
def test_torchvision_recipes_are_seeded_per_sample(npy, kind):
    x = load_data(tensors_config(npy, **{"data.augment": kind, "data.normalize": "none"})).x_train
    sample = x.reader.read(int(x.index[0]))
    aug = SampleAugment(kind, 3)
    a = aug(sample, 0, 0)
    assert a.shape == sample.shape and torch.equal(a, aug(sample, 0, 0))
    assert any(not torch.equal(a, aug(sample, e, 0)) for e in range(1, 6))
