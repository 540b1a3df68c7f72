"""What the reliability tests share: a finished tiny run to copy before damaging it, and the one-error-line check."""

import json

import pytest

from helpers import tiny_config
from kdstudio.cli import main
from kdstudio.core.pipeline import engine


def quick(**over):
    cfg = tiny_config(**over)
    cfg.evaluate.latency_repeats, cfg.export.formats = 0, ["state_dict"]
    cfg.distill.epochs = 1
    return cfg


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run; tests copy it before damaging it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    engine.run(quick(), out)
    return out


def copy_run(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def as_stopped(run):
    """Mark a copied finished run as stopped, so that --resume goes on with it (a finished one is refused)."""
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "status": "stopped"}))
    return run


def one_error_line(capsys, argv, *, rc=2):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == rc, err
    assert "unexpected error" not in err and "Traceback" not in err
    return err
