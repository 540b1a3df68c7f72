"""Seeds and sweeps: mean ± std from the per-seed results, the grid, the best point, bad sweep fields."""

import json
import statistics

import pytest
import torch

from kdstudio.cli import main
from kdstudio.core import config
from kdstudio.core.pipeline import sweep
from kdstudio.core.errors import ConfigError
from tests.helpers import tiny_config


def _fake_runner(table):
    """A runner returning made-up summaries: table[(temperature, seed)] = (student, baseline, student_val)."""
    calls = []

    def run(cfg, out, on_event, control, resume, member):
        s, b, v = table[(cfg.distill.temperature, cfg.seed)]
        calls.append((cfg.distill.temperature, cfg.distill.alpha, cfg.seed, out.name, cfg.run.seeds))
        return {"status": "completed", "teacher": {"accuracy": 0.99}, "student": {"accuracy": s, "val_accuracy": v},
                "baseline": {"accuracy": b}}
    return run, calls


def test_mean_and_std_come_from_the_per_seed_results(tmp_path):
    cfg = tiny_config()
    cfg.run.seeds = [0, 1, 2]
    cfg.run.sweep = {"distill.temperature": [2, 4]}
    table = {(2.0, 0): (0.80, 0.75, 0.70), (2.0, 1): (0.84, 0.76, 0.72), (2.0, 2): (0.86, 0.80, 0.74),
             (4.0, 0): (0.90, 0.75, 0.60), (4.0, 1): (0.88, 0.76, 0.61), (4.0, 2): (0.83, 0.80, 0.62)}
    runner, calls = _fake_runner(table)
    result = sweep.run_sweep(cfg, tmp_path, runner=runner)
    assert [(c[0], c[2], c[3]) for c in calls] == [(2.0, 0, "seed-0"), (2.0, 1, "seed-1"), (2.0, 2, "seed-2"),
                                                  (4.0, 0, "seed-0"), (4.0, 1, "seed-1"), (4.0, 2, "seed-2")]
    assert all(c[4] == [] for c in calls)  # each single run has no seeds/sweep of its own
    for row, t in zip(result["rows"], (2.0, 4.0)):
        students = [table[(t, s)][0] for s in (0, 1, 2)]
        gains = [table[(t, s)][0] - table[(t, s)][1] for s in (0, 1, 2)]
        assert row["student"]["values"] == students
        assert row["student"]["mean"] == pytest.approx(statistics.mean(students))
        assert row["student"]["std"] == pytest.approx(statistics.stdev(students))
        assert row["kd_gain"]["mean"] == pytest.approx(statistics.mean(gains))
        assert row["kd_gain"]["std"] == pytest.approx(statistics.stdev(gains))
    # temperature 4 has the better test mean, but temperature 2 the better validation mean: validation decides
    assert [r["best"] for r in result["rows"]] == [True, False] and result["criterion"] == "validation"
    on_disk = json.loads((tmp_path / sweep.SWEEP_JSON).read_text())
    assert on_disk["rows"][0]["student"]["mean"] == pytest.approx(result["rows"][0]["student"]["mean"])
    md = (tmp_path / sweep.SWEEP_MD).read_text()
    assert "**best**" in md and f"{statistics.mean([0.80, 0.84, 0.86]) * 100:.2f} ± " in md


def test_grid_is_the_product_of_every_listed_field():
    cfg = tiny_config()
    cfg.run.sweep = {"distill.temperature": [1, 2, 4], "distill.alpha": [0.5, 0.9]}
    points = sweep.grid(cfg)
    assert len(points) == 6 and points[0] == {"distill.temperature": 1, "distill.alpha": 0.5}
    runs = sweep.expand(cfg)
    assert [(r[2].distill.temperature, r[2].distill.alpha, r[2].seed) for r in runs][:2] == [(1.0, 0.5, 0),
                                                                                            (1.0, 0.9, 0)]
    assert sweep.point_label(points[1]) == "temperature-1_alpha-0.9"


def test_aggregate_of_one_seed_has_zero_spread():
    assert sweep.aggregate([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1, "values": [0.5]}
    assert sweep.aggregate([None])["mean"] is None


@pytest.mark.parametrize("sweep_value, message", [
    ({"distill.temprature": [2, 4]}, "Did you mean 'distill.temperature'"),
    ({"distill.method": ["kd", "dkd"]}, "not a numeric setting"),
    ({"distill.temperature": []}, "non-empty list of numbers"),
    ({"distill.temperature": [2, "hot"]}, "non-empty list of numbers"),
    ({"distill.alpha": [0.5, 1.5]}, "too large"),
    ({"seed": [1, 2]}, "use run.seeds"),
])
def test_bad_sweep_fields_are_refused_with_one_sentence(sweep_value, message):
    cfg = tiny_config()
    cfg.run.sweep = sweep_value
    with pytest.raises(ConfigError, match=message) as info:
        config.validate(cfg)
    assert info.value.key == "run.sweep" and "\n" not in str(info.value)


def test_bad_seeds_are_refused():
    cfg = tiny_config()
    cfg.run.seeds = [0, 0]
    with pytest.raises(ConfigError, match="twice"):
        config.validate(cfg)
    cfg.run.seeds = [0.5]
    with pytest.raises(ConfigError, match="whole numbers"):
        config.validate(cfg)


def test_bad_sweep_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "c.toml"
    cfg = tiny_config()
    cfg.run.sweep = {"distill.optimizer": ["adam", "sgd"]}
    config.save(cfg, path)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a numeric setting" in err
    assert not (tmp_path / "out").exists()


def test_seeds_run_end_to_end_from_the_command_line(tmp_path, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = tmp_path / "seeds.toml"
        cfg = tiny_config(teacher__epochs=1, distill__epochs=1, teacher__skip_sanity_check=True)
        cfg.run.seeds, cfg.evaluate.latency_repeats, cfg.export.formats = [0, 1], 0, []
        config.save(cfg, path)
        out = tmp_path / "sweep"
        assert main(["run", str(path), "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert "± " in printed and "**best**" in printed
    per_seed = [json.loads((out / "base" / f"seed-{s}" / "summary.json").read_text()) for s in (0, 1)]
    assert [config.load(out / "base" / f"seed-{s}" / "config.toml").seed for s in (0, 1)] == [0, 1]
    row = json.loads((out / sweep.SWEEP_JSON).read_text())["rows"][0]
    accs = [p["student"]["accuracy"] for p in per_seed]
    assert row["student"]["mean"] == pytest.approx(statistics.mean(accs))
    assert row["student"]["std"] == pytest.approx(statistics.stdev(accs))
    # --resume of a finished sweep reuses every run and rebuilds the same table
    assert main(["run", "--resume", "--out", str(out)]) == 0
    again = json.loads((out / sweep.SWEEP_JSON).read_text())["rows"][0]
    assert again["student"] == row["student"]


def test_a_new_sweep_never_reuses_an_existing_sweep_folder(tmp_path):
    from kdstudio.core.errors import KDError
    cfg = tiny_config()
    cfg.run.seeds = [0]
    runner, _ = _fake_runner({(cfg.distill.temperature, 0): (0.9, 0.8, 0.9)})
    sweep.run_sweep(cfg, tmp_path, runner=runner)
    with pytest.raises(KDError, match="already holds a sweep"):
        sweep.run_sweep(cfg, tmp_path, runner=runner)
