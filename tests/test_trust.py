"""Per-file trust (issue 15, section 1): a TorchScript file, a pickled model or a file.py architecture is a program;
it runs only after a trust for that file (path + content hash), from --trust / run.trust_files on the command line
or the window's prompt, remembered per project outside the project folder."""

import json
import os
import warnings

import pytest
import torch

from kdstudio.cli import main
from kdstudio.core import models, trust
from kdstudio.core.config import save
from kdstudio.core.data import load_data
from kdstudio.core.errors import KDError
from kdstudio.core.models import teacher_io
from kdstudio.core.store.projects import ProjectStore

from helpers import tiny_config

warnings.filterwarnings("ignore", category=DeprecationWarning)


class Overwriter(torch.nn.Module):
    """A valid digits teacher whose forward overwrites `target` with "AAAAAAAA" (as the issue's .bashrc attack)."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target
        self.lin = torch.nn.Linear(64, 10)

    def forward(self, x):
        t = torch.from_file(self.target, True, 8, dtype=torch.uint8)
        t.fill_(65)
        return self.lin(x.flatten(1)) + 0 * t.sum().float()


@pytest.fixture
def attack(tmp_path):
    """(TorchScript teacher file, the file it overwrites when it runs)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    path = tmp_path / "teacher.pt"
    torch.jit.save(torch.jit.script(Overwriter(str(victim))), str(path))
    return path, victim


def file_cfg(path):
    cfg = tiny_config()
    cfg.teacher.source, cfg.teacher.path = "file", str(path)
    return cfg


def test_an_untrusted_torchscript_teacher_is_refused_before_any_of_it_runs(attack):
    path, victim = attack
    cfg = file_cfg(path)
    bundle = load_data(cfg)
    with pytest.raises(trust.UntrustedFile, match="TorchScript program: loading it runs the code saved in it.*"
                                                  "--trust .*state_dict, .safetensors or .onnx"):
        teacher_io.load_teacher(cfg, bundle, "cpu")
    assert victim.read_text() == "original"
    trust.grant(path)  # the explicit trust is the only thing that lets it run, and it really is a program
    teacher_io.load_teacher(cfg, bundle, "cpu")
    assert victim.read_text() == "AAAAAAAA"


def test_trust_is_bound_to_the_files_content(attack):
    path, _ = attack
    trust.grant(path)
    assert trust.is_trusted(path)
    with open(path, "ab") as fh:  # swapped or edited after it was trusted
        fh.write(b"\0")
    assert not trust.is_trusted(path)
    with pytest.raises(trust.UntrustedFile):
        trust.require(path, "torchscript")


def test_a_custom_python_architecture_is_not_run_until_trusted(tmp_path):
    marker = tmp_path / "ran"
    f = tmp_path / "net.py"
    f.write_text(f"open({str(marker)!r}, 'w').write('x')\nimport torch\n"
                 "def make(num_classes, input_shape):\n    return torch.nn.Linear(64, num_classes)\n")
    with pytest.raises(trust.UntrustedFile, match="Python file: using it as an architecture runs it"):
        models.build(f"{f}:make", 10, (1, 8, 8))
    assert not marker.exists()
    trust.grant(f)
    assert isinstance(models.build(f"{f}:make", 10, (1, 8, 8)), torch.nn.Linear)
    assert marker.exists()


class Pickled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(64, 10)

    def forward(self, x):
        return self.lin(x.flatten(1))


def test_a_pickle_needs_trust_pickle_and_a_trust_for_that_file(tmp_path):
    path = tmp_path / "full.pt"
    torch.save(Pickled(), path)
    cfg = file_cfg(path)
    cfg.teacher.trust_pickle, cfg.teacher.skip_sanity_check = True, True
    bundle = load_data(cfg)
    with pytest.raises(trust.UntrustedFile, match="pickled full model: unpickling it runs code"):
        teacher_io.load_teacher(cfg, bundle, "cpu")
    trust.grant(path)
    assert teacher_io.load_teacher(cfg, bundle, "cpu")(bundle.x_val[:2]).shape == (2, 10)


def test_a_fifo_as_teacher_path_is_refused_instead_of_hanging(tmp_path):
    fifo = tmp_path / "teacher.pt"
    os.mkfifo(fifo)
    cfg = file_cfg(fifo)
    with pytest.raises(KDError, match="is not a regular file"):
        teacher_io.load_teacher(cfg, load_data(cfg), "cpu")


def test_the_store_remembers_per_project_and_a_damaged_store_grants_nothing(tmp_path, attack):
    path, _ = attack
    store = trust.TrustStore(tmp_path / "settings" / "trust.json")
    a, b = tmp_path / "A", tmp_path / "B"
    store.remember(a, path, "torchscript", trust.digest(path))
    trust.revoke_all()
    assert store.apply(b) == 0 and not trust.is_trusted(path)
    assert store.apply(a) == 1 and trust.is_trusted(path)
    trust.revoke_all()
    (tmp_path / "settings" / "trust.json").write_text("{not json")
    assert store.apply(a) == 0 and "cannot be read" in store.error


def test_cli_refuses_an_untrusted_teacher_and_runs_it_with_trust(tmp_path, capsys, attack):
    path, victim = attack
    cfg = file_cfg(path)
    cfg.teacher.skip_sanity_check = True
    cfg.distill.epochs, cfg.evaluate.latency_repeats, cfg.export.formats = 1, 0, ["state_dict"]
    save(cfg, tmp_path / "c.toml")
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r1")]) == 2
    assert "not trusted. If you trust it, pass --trust" in capsys.readouterr().err
    assert victim.read_text() == "original"
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r2"), "--trust", str(path)]) == 0
    assert victim.read_text() == "AAAAAAAA"
    # eval/export of that run in a later process: the config alone does not trust the file again
    trust.revoke_all()
    victim.write_text("original")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "r2"), "--repeats", "0"]) == 0
    assert "teacher not loaded" in capsys.readouterr().err and victim.read_text() == "original"
    assert main(["eval", str(tmp_path / "r2"), "--repeats", "0", "--trust", str(path)]) == 0
    assert victim.read_text() == "AAAAAAAA"


def test_an_untrusted_file_in_teacher_extra_paths_is_refused(tmp_path, attack):
    path, victim = attack
    other = tmp_path / "second.pt"
    other.write_bytes(path.read_bytes())
    trust.grant(path)
    cfg = file_cfg(path)
    cfg.teacher.skip_sanity_check, cfg.teacher.extra_paths = True, [str(other)]
    from kdstudio.core.pipeline import engine
    with pytest.raises(trust.UntrustedFile, match="second.pt' is a TorchScript program"):
        engine.run(cfg, tmp_path / "r")


def test_cli_honours_run_trust_files_of_the_config_it_is_given(tmp_path, attack):
    path, victim = attack
    cfg = file_cfg(path)
    cfg.teacher.skip_sanity_check = True
    cfg.distill.epochs, cfg.evaluate.latency_repeats, cfg.export.formats = 1, 0, ["state_dict"]
    cfg.run.trust_files = [str(path)]
    save(cfg, tmp_path / "c.toml")
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r")]) == 0
    assert victim.read_text() == "AAAAAAAA"


def test_the_window_asks_before_its_probe_runs_a_torchscript_teacher(window, qtbot, attack, kdstudio_home):
    from PySide6.QtCore import Qt
    path, victim = attack
    project = ProjectStore().create("ts", file_cfg(path))
    window.model.set_project(project)
    window.hub.load_catalog()
    qtbot.waitUntil(lambda: window.trust_prompt.box is not None, timeout=60_000)
    box = window.trust_prompt.box
    assert "TorchScript program" in box.text() and trust.digest(path) in box.informativeText()
    assert victim.read_text() == "original"  # the probe did not run it
    qtbot.mouseClick(box.yes, Qt.LeftButton)
    qtbot.waitUntil(lambda: victim.read_text() == "AAAAAAAA", timeout=60_000)  # trusted: now it loads
    saved = json.loads((kdstudio_home / "trust.json").read_text())
    assert [r["sha256"] for r in saved[str(project.path.resolve())]] == [trust.digest(path)]
    assert not (project.path / "trust.json").exists()  # never inside the project folder


def test_the_window_does_not_ask_again_after_a_no(window, qtbot, attack):
    from PySide6.QtCore import Qt
    path, victim = attack
    window.model.set_project(ProjectStore().create("ts", file_cfg(path)))
    window.hub.load_catalog()
    qtbot.waitUntil(lambda: window.trust_prompt.box is not None, timeout=60_000)
    qtbot.mouseClick(window.trust_prompt.box.no, Qt.LeftButton)
    assert window.trust_prompt.box is None
    window.hub.recount()
    qtbot.waitUntil(lambda: window.hub.info is not None, timeout=60_000)
    assert window.trust_prompt.box is None and victim.read_text() == "original"
    assert "not trusted" in window.hub.info["errors"]["teacher"]
