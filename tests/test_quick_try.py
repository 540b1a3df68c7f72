"""The README's quick try (`kdstudio init`, then `run --set data.source=synthetic`) distils on data where KD is known
to help: some training and validation labels are wrong, the test split's are all true, so the teacher's soft targets
carry what the wrong labels hide (figures: benchmarks/experiment_quick_try.py)."""

import torch

from kdstudio.core.config.templates import demo_config
from kdstudio.core.data.synthetic import load_synthetic, mislabelled

SMALL_SAMPLES = 512  # a quarter of the quick try's 2,048: ~10 s of CPU; at 384 the test split (77) is too small to tell


def _quick_try(**data):
    cfg = demo_config()  # what `kdstudio init` writes
    cfg.set("data.source", "synthetic")  # the README's quick try
    for key, value in data.items():
        setattr(cfg.data, key, value)
    return cfg


def _true_class(bundle, x: torch.Tensor) -> torch.Tensor:
    """Without image noise or shift every image *is* its class's template: its true class is the template it equals."""
    templates = torch.unique(bundle.x_test.flatten(1), dim=0)
    return (x.flatten(1)[:, None, :] - templates[None]).abs().amax(-1).argmin(1), templates


def test_the_quick_try_mislabels_training_and_validation_labels_but_never_the_test_split():
    noise = _quick_try().data.synthetic_label_noise
    assert 0.1 <= noise <= 0.4  # the default the quick try runs with
    bundle = load_synthetic(_quick_try(synthetic_noise=0.0, synthetic_shift=0, synthetic_samples=600))
    seen_x = torch.cat([bundle.x_train, bundle.x_val])
    seen_y = torch.cat([bundle.y_train, bundle.y_val])
    template_of_test, templates = _true_class(bundle, bundle.x_test)
    assert len(templates) == 10
    # each template's test images all carry one label: the test split is clean
    names = torch.full((10,), -1)
    for t in range(10):
        labels = torch.unique(bundle.y_test[template_of_test == t])
        assert len(labels) == 1
        names[t] = labels[0]
    truth = names[_true_class(bundle, seen_x)[0]]
    wrong = (truth != seen_y).float().mean().item()
    assert abs(wrong - noise) < 0.01  # that share of the labels the models learn from is wrong, the rest right


def test_wrong_labels_are_spread_over_the_other_classes_and_never_the_true_one():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(5000) % 10
    noisy = mislabelled(y, 10, 0.2, g)
    wrong = noisy != y
    assert wrong.sum().item() == 1000
    counts = torch.bincount(noisy[wrong], minlength=10)
    assert counts.min().item() > 60 and counts.max().item() < 140  # about 100 each: uniform over other classes


def test_without_label_noise_the_synthetic_splits_are_as_before():
    cfg = _quick_try(synthetic_label_noise=0.0, synthetic_samples=200)
    a, b = load_synthetic(cfg), load_synthetic(cfg)
    assert a.x_train.equal(b.x_train) and a.y_test.equal(b.y_test)
    assert (len(a.y_train), len(a.y_val), len(a.y_test)) == (130, 30, 40)


def test_a_small_quick_try_distils_a_student_that_beats_the_same_student_from_scratch(tmp_path):
    """The quick try's settings end to end on a quarter of its images (each stage as long as in the quick try)."""
    from kdstudio.core.pipeline import engine
    cfg = _quick_try(synthetic_samples=SMALL_SAMPLES)
    cfg.export.formats, cfg.evaluate.latency_repeats = [], 0
    s = engine.run(cfg, tmp_path / "run")
    assert s["student"]["params"] * 4 < s["teacher"]["params"]
    gain = s["kd_gain_stats"]
    assert gain["gain"] >= 0.03 and gain["better"] > 2 * gain["worse"]  # measured: +9.8 pts, CI +2.9…+17.6
