"""The fast paths change speed, never results: AMP off equals a plain fp32 reference loop; the GUI worker
tells the window at most ~20-25 times a second."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdstudio.core import events, losses, models
from kdstudio.core.train.loop import StageRunner, StageSpec


def _reference_kd_loop(teacher, student, x, y, *, epochs, batch, lr, wd, seed, T, alpha):
    """A plain fp32 KD loop written from the formulas: same permutation source, AdamW, per-step cosine."""
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=wd)
    steps_per_epoch = len(y) // batch + (1 if len(y) % batch >= 2 else 0)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(steps_per_epoch):
            idx = perm[i * batch:(i + 1) * batch]
            with torch.no_grad():
                t = teacher(x[idx])
            s = student(x[idx])
            kl = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean") * T * T
            loss = alpha * kl + (1 - alpha) * F.cross_entropy(s, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return student


@pytest.mark.parametrize("cache", [True, False])
def test_amp_off_engine_equals_the_fp32_reference_loop(tmp_path, cache):
    torch.manual_seed(0)
    x, y = torch.randn(90, 12), torch.randint(0, 4, (90,))
    teacher = models.freeze(models.build("mlp", 4, (12,), 32, 1))
    torch.manual_seed(1)
    student_a = models.build("mlp", 4, (12,), 8, 1)
    student_b = models.build("mlp", 4, (12,), 8, 1)
    student_b.load_state_dict(student_a.state_dict())
    spec = StageSpec("distill", student_a, losses.create("kd", temperature=3.0, alpha=0.7), epochs=3, lr=0.01,
                     weight_decay=1e-4, batch_size=16, teacher=teacher, cache_teacher=cache)
    StageRunner(spec, x=x, y=y, x_val=x, y_val=y, device=torch.device("cpu"), amp_dtype=None,
                emit=lambda *a, **k: None, control=events.RunControl(), checkpoint_path=tmp_path / "c.pt",
                seed=5).run()
    _reference_kd_loop(teacher, student_b, x, y, epochs=3, batch=16, lr=0.01, wd=1e-4, seed=5, T=3.0, alpha=0.7)
    for a, b in zip(student_a.parameters(), student_b.parameters()):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def test_gui_worker_batches_events_at_most_25_times_a_second(qtbot, tmp_path):
    """A real run through the worker: the window receives event batches no faster than ~20 per second."""
    import time

    from kdstudio.gui.worker import RunThread
    from tests.helpers import tiny_config

    controller = RunThread()
    stamps, count = [], [0]

    def on_batch(batch):
        stamps.append(time.perf_counter())
        count[0] += len(batch)

    controller.events.connect(on_batch)
    cfg = tiny_config(**{"distill.epochs": 6, "distill.log_every": 1, "teacher.epochs": 4})
    with qtbot.waitSignal(controller.finished, timeout=120_000):
        controller.start(cfg, tmp_path / "run")
    assert count[0] > len(stamps)  # events were batched, not forwarded one by one
    span = stamps[-1] - stamps[0]
    assert len(stamps) >= 2 and (len(stamps) - 1) / span <= 25, (len(stamps), span)
