"""The KD gain in the window: the Evaluate page's card and the runs table say the interval's words, and "Run 3
seeds" starts the run's own config over three seeds when the gain is within noise."""

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from kdstudio.core import config as config_mod  # noqa: E402
from kdstudio.core.outputs import gain  # noqa: E402
from kdstudio.core.store import summary as summary_mod  # noqa: E402
from kdstudio.gui.pages.history import COLUMNS  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402

NOISE = {"test": "paired", "n": 359, "gain": 0.003, "low": -0.006, "high": 0.011, "confidence": 0.95, "p": 0.75,
         "better": 6, "worse": 5, "resamples": 10000}
HELPED = {**NOISE, "gain": 0.021, "low": 0.009, "high": 0.034, "p": 0.002, "better": 12, "worse": 4}


def _finished_run(project, name: str, stats: dict, seed: int = 5):
    """A finished run folder in the project (config.toml and summary.json as the engine writes them)."""
    folder = project.runs_dir / name
    folder.mkdir(parents=True)
    cfg = tiny_config(**{"distill.epochs": 1})
    cfg.seed = seed
    config_mod.save(cfg, folder / "config.toml")
    entry = {"accuracy": 0.95, "params": 1000, "bytes": 4000, "latency_ms_cpu_b1": 0.1}
    s = summary_mod.Summary.from_json({
        "status": "completed", "started": f"2026-01-02T03:04:0{len(name) % 10}", "device": "cpu",
        "distill": {"method": "kd"}, "teacher": {**entry, "accuracy": 0.97, "params": 9000},
        "student": {**entry, "accuracy": 0.95 + stats["gain"]}, "baseline": entry, "kd_gain": stats["gain"],
        "kd_gain_stats": stats, "compression": {"params_ratio": 9.0, "accuracy_kept": -0.02},
        "evaluation": {"reference": "teacher", "table": []}})
    summary_mod.write(folder / "summary.json", s)
    return folder


def _settle():
    for _ in range(4):
        QApplication.processEvents()


def test_evaluate_and_runs_table_say_the_interval_and_run_3_seeds_starts_three(window, qtbot, monkeypatch):
    from kdstudio.core.pipeline import engine
    started = []

    def engine_run(cfg, out, **_kw):  # the window's worker calls the engine: the config it got is what counts
        started.append((cfg, out))
        return {"status": "stopped"}
    monkeypatch.setattr(engine, "run", engine_run)
    window.panel.new_project("Gain")
    project = window.model.project
    _finished_run(project, "20260102-030401", HELPED)
    noisy = _finished_run(project, "20260102-030402", NOISE, seed=5)
    window.show_page("Train")
    window.train.history.reload(project)
    _settle()
    tree = window.train.history.tree
    col = COLUMNS.index("KD gain")
    cells = {tree.topLevelItem(i).data(0, Qt.UserRole).path.name: tree.topLevelItem(i) for i in range(2)}
    assert cells[noisy.name].text(col) == "+0.3 pts · within noise"
    assert cells["20260102-030401"].text(col) == "+2.1 pts · helped"
    assert cells[noisy.name].toolTip(col) == gain.gain_sentence(NOISE) and "95 % CI" in cells[noisy.name].toolTip(col)

    window.show_page("Evaluate")
    page = window.pages["Evaluate"]
    [helped] = [r for r in project.runs() if r.path.name == "20260102-030401"]
    page.show_run(helped)
    words = lambda: page.gain.detail.text().replace("\u2060", "")  # noqa: E731 - the card keeps "…" unbroken
    assert words() == "vs baseline 95.0%: distillation helped (95 % CI +0.9…+3.4 pts, McNemar p = 0.002)"
    assert not page.seeds_btn.isVisible()  # a clear gain needs no more seeds
    [run] = [r for r in project.runs() if r.path == noisy]
    page.show_run(run)
    _settle()
    assert page.gain.value.text() == "+0.3 pts"
    assert words() == ("vs baseline 95.0%: within noise (95 % CI −0.6…+1.1 pts, McNemar p = 0.75); "
                       "run 3+ seeds to tell")
    assert "McNemar's exact test" in page.gain.toolTip()
    window.resize(1280, 800)
    _settle()
    assert page.seeds_btn.isVisible() and page.seeds_btn.isEnabled()

    qtbot.mouseClick(page.seeds_btn, Qt.LeftButton)
    assert window.run.running and window.run.live.cfg.run.seeds == [5, 6, 7]
    assert window.current_page() is window.train  # the window shows the run it started
    assert page.seeds_btn.text() == "Queue 3 seeds"  # one run at a time: during it the button queues (see
    # tests/test_gui_queue_restart.py)
    qtbot.waitUntil(lambda: not window.run.running, timeout=60_000)
    [(cfg, out)] = started
    assert cfg.run.seeds == [5, 6, 7] and cfg.seed == 5 and cfg.distill.epochs == 1  # the run's own config
    assert out.parent == project.runs_dir and out != noisy  # a new run of the project, the old one kept
    assert page.seeds_btn.isEnabled() and page.seeds_btn.text() == "Run 3 seeds"


def test_a_sweeps_gain_card_says_the_t_test_over_seeds(window, tmp_path):
    from kdstudio.core.pipeline import sweep
    from kdstudio.core.store.projects import RunInfo
    members = [{"status": "completed", "seed": s, "student": {"accuracy": 0.95 + g}, "baseline": {"accuracy": 0.95},
                "teacher": {"accuracy": 0.99}} for s, g in enumerate((0.010, 0.012, 0.015))]
    row = {**sweep.summarize_point({}, members), "best": True}
    window.show_page("Evaluate")
    page = window.pages["Evaluate"]
    page.show_run(RunInfo(tmp_path, "completed", "", {"sweep": True, "status": "completed", "rows": [row],
                                                      "seeds": [0, 1, 2], "runs": members, "criterion": "test"}))
    said = page.gain.detail.text().replace("\u2060", "")
    assert said.startswith("over 3 seeds: distillation helped (95 % CI +0.6…+1.9 pts, paired t-test p = 0.0")
    assert page.gain.value.text() == "+1.23 ± 0.25 pts" and "paired t-test over 3 seeds" in page.gain.toolTip()
    gain_col = [page.table.horizontalHeaderItem(c).text() for c in range(page.table.columnCount())].index(
        "KD gain (pts)")
    assert "paired t-test" in page.table.item(0, gain_col).toolTip()
    assert not page.seeds_btn.isVisible()
