"""The Train page's progress text before and after a stage's first step report (Qt-free)."""

from kdstudio.core import events as ev
from kdstudio.gui.pages.live import LiveRun
from tests.helpers import tiny_config


def test_progress_before_the_first_step_says_epoch_1_and_measuring(tmp_path):
    live = LiveRun(tiny_config(**{"teacher.epochs": 3}), tmp_path / "run")
    live.ingest([ev.Event(ev.STAGE_STARTED, "teacher", {})])
    _, text, detail = live.bar(paused=False)
    assert "teacher · epoch 1/3" in text and "0/0" not in text
    assert detail == "measuring the speed for an ETA…"
    steps = [ev.Event(ev.STEP, "teacher", {"epoch": 1, "epochs": 3, "step": k, "steps": 4, "global_step": k,
                                           "samples_per_s": 100.0}, time=100.0 + k) for k in (1, 2)]
    live.ingest(steps)
    _, text, detail = live.bar(paused=False)
    assert "teacher · epoch 1/3" in text and detail.startswith("ETA ")
