"""The launch scripts a run designed in the window is submitted with: run.sh (torchrun here) and run.sbatch (SLURM),
both running exactly `kdstudio run CONFIG --out FOLDER`; written by `kdstudio launch-script`."""

import os
import subprocess
import sys
from pathlib import Path

from kdstudio.cli import main
from kdstudio.core import config as config_mod
from tests.helpers import tiny_config


def test_launch_script_writes_both_scripts_that_bash_accepts(tmp_path, capsys):
    cfg = tmp_path / "project.toml"
    config_mod.save(tiny_config(), cfg)
    assert main(["launch-script", str(cfg), "--nproc", "4", "--nodes", "2"]) == 0
    assert "run.sh" in capsys.readouterr().out
    sh, sb = (tmp_path / "run.sh").read_text(), (tmp_path / "run.sbatch").read_text()
    assert "exec torchrun --standalone --nproc-per-node 4 -m kdstudio run project.toml --out runs/project-ddp" in sh
    assert "#SBATCH --nodes=2" in sb and "#SBATCH --gpus-per-node=4" in sb and "#SBATCH --ntasks-per-node=1" in sb
    assert 'srun torchrun --nnodes "$SLURM_NNODES" --nproc-per-node 4' in sb
    assert '--rdzv-endpoint "$head_node:29500"' in sb and "-m kdstudio run project.toml --out runs/project-ddp" in sb
    assert (tmp_path / "run.sh").stat().st_mode & 0o100
    for script in ("run.sh", "run.sbatch"):
        assert subprocess.run(["bash", "-n", str(tmp_path / script)]).returncode == 0


def test_bad_launch_script_arguments_are_one_sentence(tmp_path, capsys):
    assert main(["launch-script", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    cfg = tmp_path / "c.toml"
    config_mod.save(tiny_config(), cfg)
    assert main(["launch-script", str(cfg), "--nproc", "0"]) == 2
    err = capsys.readouterr().err
    assert "--nproc 0" in err and "Traceback" not in err


def test_run_sh_runs_the_config_with_torchrun(tmp_path):
    """The script itself, on 1 CPU process here (a GPU machine gives --nproc its GPU count); a name with spaces is
    quoted."""
    cfg = tmp_path / "my project.toml"
    config_mod.save(tiny_config(**{"distill.epochs": 1, "teacher.skip_sanity_check": True, "baseline.enabled": False,
                                   "export.formats": [], "evaluate.latency_repeats": 0}), cfg)
    assert main(["launch-script", str(cfg)]) == 0
    assert "run 'my project.toml' --out 'runs/my project-ddp'" in (tmp_path / "run.sh").read_text()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", str(tmp_path / "run.sh")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "runs" / "my project-ddp" / "summary.json").is_file()


def test_run_menu_exports_the_projects_launch_scripts(window, qtbot, monkeypatch):
    from PySide6.QtWidgets import QInputDialog, QMessageBox
    from tests.test_gui_desktop import menu_action
    project = window.store.create("Cluster", tiny_config())
    window.model.set_project(project)
    answers = iter([(2, True), (3, True)])  # 2 GPUs per machine, 3 machines
    monkeypatch.setattr(QInputDialog, "getInt", lambda *a, **k: next(answers))
    told = []
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: told.append(a[2]))
    menu_action(window, "&Run", "Export launch script…").trigger()
    assert "run.sbatch" in told[0]
    assert "--nproc-per-node 2 -m kdstudio run project.toml" in (project.path / "run.sh").read_text()
    assert "#SBATCH --nodes=3" in (project.path / "run.sbatch").read_text()
