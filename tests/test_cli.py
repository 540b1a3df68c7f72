"""The `kdstudio` command: bad input gives one line on stderr and exit code 2; Ctrl-C stops cleanly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdstudio.cli import main
from kdstudio.core import config
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parent.parent


def _one_line_error(capsys, argv, expect: str):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 0, err
    assert err.startswith("kdstudio: error: ") and expect in err, err
    return err


def _write(tmp_path, text: str) -> str:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return str(p)


def test_missing_config_file(capsys, tmp_path):
    _one_line_error(capsys, ["run", str(tmp_path / "missing.toml")], "does not exist")


def test_toml_syntax_error_names_the_line(capsys, tmp_path):
    _one_line_error(capsys, ["run", _write(tmp_path, "seed = 0\n[distill\n")], "line 2")


def test_unknown_key(capsys, tmp_path):
    _one_line_error(capsys, ["run", _write(tmp_path, "[teacher]\nepoch = 3\n")], "teacher.epochs")


def test_wrong_type(capsys, tmp_path):
    _one_line_error(capsys, ["run", _write(tmp_path, '[distill]\nepochs = "ten"\n')], "distill.epochs")


@pytest.mark.parametrize("setting", ["distill.epochs=0", "data.batch_size=-4", "distill.lr=0", "teacher.lr=-1"])
def test_non_positive_numbers(capsys, tmp_path, setting):
    _one_line_error(capsys, ["run", _write(tmp_path, ""), "--set", setting], setting.split("=")[0])


def test_fractions_leave_no_training_data(capsys, tmp_path):
    _one_line_error(capsys, ["run", _write(tmp_path, "[data]\nval_fraction = 0.6\ntest_fraction = 0.4\n")],
                    "below 1")


def test_cuda_requested_without_cuda(capsys, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _one_line_error(capsys, ["run", _write(tmp_path, ""), "--device", "cuda", "--out", str(tmp_path / "o")],
                    "no CUDA GPU")


def test_resume_without_checkpoint(capsys, tmp_path):
    _one_line_error(capsys, ["run", "--resume", "--out", str(tmp_path)], "holds no run (no config.toml)")


def test_output_folder_not_writable(capsys, tmp_path):
    (tmp_path / "f").write_text("")
    _one_line_error(capsys, ["run", _write(tmp_path, ""), "--out", str(tmp_path / "f" / "run")],
                    "Cannot write to the output folder")


def test_bad_set_syntax(capsys, tmp_path):
    _one_line_error(capsys, ["run", _write(tmp_path, ""), "--set", "distill.lr"], "key.path=value")


def test_debug_shows_the_traceback(capsys, tmp_path):
    assert main(["run", str(tmp_path / "missing.toml"), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_init_writes_a_valid_commented_config_and_refuses_to_overwrite(capsys, tmp_path):
    path = tmp_path / "k.toml"
    assert main(["init", str(path)]) == 0
    text = path.read_text()
    assert text.count("#") > 20
    config.validate(config.load(path))
    _one_line_error(capsys, ["init", str(path)], "already exists")


def test_run_with_overrides_writes_the_resolved_config(capsys, tmp_path):
    cfg_path = tmp_path / "c.toml"
    config.save(tiny_config(), cfg_path)
    out = tmp_path / "run"
    assert main(["run", str(cfg_path), "--out", str(out), "--set", "distill.temperature=2",
                 "--set", "baseline.enabled=false", "--set", 'export.formats=["state_dict"]']) == 0
    resolved = config.load(out / "config.toml")
    assert resolved.distill.temperature == 2.0 and resolved.baseline.enabled is False
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["baseline"] is None
    assert "Run completed" in capsys.readouterr().out


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path):
    cfg_path = tmp_path / "c.toml"
    config.save(tiny_config(**{"teacher.epochs": 400}), cfg_path)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "kdstudio", "run", str(cfg_path), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    deadline = time.time() + 120
    while not (out / "checkpoints" / "teacher.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert json.loads((out / "summary.json").read_text())["status"] == "stopped"
    assert (out / "checkpoints" / "teacher.pt").is_file()
    assert b"Traceback" not in err


def test_dkd_runs_at_its_own_alpha_and_a_larger_student_is_warned_of_before_training(capsys, tmp_path):
    cfg_path = tmp_path / "c.toml"
    config.save(tiny_config(**{"distill.epochs": 1, "teacher.skip_sanity_check": True}), cfg_path)  # kd, alpha 0.9
    out = tmp_path / "run"
    assert main(["run", str(cfg_path), "--out", str(out), "--set", "distill.method=dkd", "--set",
                 "student.width=512", "--set", "baseline.enabled=false", "--set", 'export.formats=["state_dict"]',
                 "--set", "evaluate.latency_repeats=0"]) == 0
    captured = capsys.readouterr()
    assert config.load(out / "config.toml").distill.alpha == 1.0  # dkd's default, not kd's 0.9
    assert "`dkd`, temperature 4, alpha 1," in (out / "exports" / "MODEL_CARD.md").read_text()
    log = (out / "log.txt").read_text()
    warning = log.index("more parameters than its teacher")
    assert warning < log.index("[teacher]")  # before the first teacher epoch
    assert "more parameters than its teacher" in captured.err
    assert "× more parameters)" in captured.out and "fewer parameters" not in captured.out


def test_the_quick_try_distils_into_a_smaller_student_and_ratios_are_said_the_right_way_round():
    from kdstudio.core import models
    from kdstudio.core.config.templates import demo_config
    from kdstudio.core.store.summary import larger_student_warning, ratio_said
    cfg = demo_config()  # what `kdstudio init` writes
    cfg.set("data.source", "synthetic")  # the README's quick try
    d = cfg.data
    teacher, student = models.planned_counts(cfg, d.synthetic_classes, (d.synthetic_channels, d.synthetic_size,
                                                                        d.synthetic_size))
    assert teacher > 4 * student and larger_student_warning(teacher, student) is None
    assert ratio_said(teacher / student, "fewer parameters", "more parameters").endswith("× fewer parameters")
    assert ratio_said(0.48, "fewer parameters", "more parameters") == "2.1× more parameters"  # never "0.5× fewer"
    assert ratio_said(None, "fewer", "more") == ""


def test_synthetic_images_are_shifted_and_noisy_as_configured():
    from kdstudio.core.data.synthetic import load_synthetic
    cfg = config.Config()
    cfg.data.source, cfg.data.synthetic_samples, cfg.data.batch_size = "synthetic", 64, 8
    a = load_synthetic(cfg)
    assert tuple(a.input_shape) == (1, 16, 16) and a.num_classes == 10
    cfg.data.synthetic_shift, cfg.data.synthetic_noise = 0, 0.0
    plain = load_synthetic(cfg)
    cfg.data.synthetic_shift = 3
    moved = load_synthetic(cfg)
    assert not plain.x_train.equal(moved.x_train)  # the same patterns, moved
