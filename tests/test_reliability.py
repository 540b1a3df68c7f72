"""Issue 15, sections 2-3: files the app reads never stop it, and writes cannot half-happen.
Each test is one row (or a few) of docs/RELIABILITY.md; the faults come from tests/faults.py; runs that can
always go on and unusual inputs are in test_reliability_runs.py."""

import os
import pickle
import warnings

import pytest
import torch

import faults
from helpers import tiny_config
from reliability_helpers import quick, finished, copy_run, as_stopped, one_error_line  # noqa: F401 (finished is a fixture)
from kdstudio.cli import main
from kdstudio.core import config
from kdstudio.core.errors import KDError
from kdstudio.core.store import summary as summary_mod
from kdstudio.core.store.files import JsonlWriter, atomic_write_text, read_metrics
from kdstudio.core.store.projects import ProjectStore
from kdstudio.core.train.checkpoints import read_checkpoint

warnings.filterwarnings("ignore", category=DeprecationWarning)


# ---- 2. files the app reads ----------------------------------------------------------------------------------

def test_summary_truncated_at_every_byte_is_a_summary_error_or_a_summary(finished):
    data = (finished / "summary.json").read_bytes()
    for at in range(len(data)):
        try:
            summary_mod.loads(faults.truncated(data, at).decode("utf-8", "replace"), "summary.json")
        except summary_mod.SummaryError:
            pass


@pytest.mark.parametrize("text", ['{"student": "oops"}', '{"student": {"accuracy": "high"}}', "[1, 2]", "null",
                                  '"x"', "[" * 100_000 + "]" * 100_000, '{"kd_gain": 1e999}',
                                  '{"status": "\\u0000\\u001b[31m"}', '{"schema_version": 99}', '{"teacher": []}',
                                  '{"compression": {"params_ratio": "x"}}', "\ufeff{}", "NaN"])
def test_damaged_summaries_are_one_sentence(text):
    try:
        summary_mod.loads(text, "summary.json")
    except summary_mod.SummaryError as e:
        assert str(e) and "\n" not in str(e)


@pytest.mark.parametrize("text", ["{torn", "[]", '{"student": "oops"}'])
def test_eval_export_and_resume_of_a_run_with_a_damaged_summary_say_so(finished, tmp_path, capsys, text):
    run = copy_run(finished, tmp_path / "run")
    (run / "summary.json").write_text(text)
    for argv in (["eval", str(run)], ["export", str(run), "--format", "state_dict", "--out", str(tmp_path / "x")],
                 ["run", "--resume", "--out", str(run)]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code in (0, 2) and "unexpected error" not in err, (argv, err)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, pickle.dumps(Evil()), "torn", "list"])
def test_a_damaged_checkpoint_on_resume_is_one_sentence_and_never_unpickled(finished, tmp_path, capsys, content):
    run = as_stopped(copy_run(finished, tmp_path / "run"))
    ckpt = run / "checkpoints" / "distill.pt"
    if content == "torn":
        content = faults.truncated(ckpt.read_bytes(), 300)
    elif content == "list":
        buf = __import__("io").BytesIO()
        torch.save([1, 2], buf)
        content = buf.getvalue()
    ckpt.write_bytes(content)
    with pytest.raises(KDError, match="cannot be used") as e:
        read_checkpoint(ckpt)
    assert "weights_only" not in str(e.value)
    err = one_error_line(capsys, ["run", "--resume", "--out", str(run)])
    assert "distill.pt' cannot be used" in err and "weights_only" not in err and "pwned" not in err


def test_eval_of_a_run_with_an_empty_student_checkpoint_is_one_sentence(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path / "run")
    (run / "checkpoints" / "distill.pt").write_bytes(b"")
    assert "is empty" in one_error_line(capsys, ["eval", str(run)])


def test_a_torn_last_metrics_line_does_not_swallow_the_next_record(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2, "lo')  # killed mid-line
    w = JsonlWriter(path)
    w.write({"epoch": 3})
    w.close()
    assert read_metrics(path) == [{"epoch": 1}, {"epoch": 3}]


def test_garbage_settings_and_project_files_never_stop_the_store(tmp_path, kdstudio_home):
    from kdstudio.core.store.settings import Settings, settings_path
    settings_path().parent.mkdir(parents=True, exist_ok=True)
    settings_path().write_bytes(b"\xff\xfe[" * 50)
    Settings().save()  # starts afresh
    store = ProjectStore()
    store.create("good", tiny_config())
    bad = store.create("bad")
    bad.file.write_bytes(b"\x00\xff garbage = = =")
    listed = {p.name: p for p in store.list()}
    assert listed["good"].config is not None and listed["bad"].damaged


# ---- 3. writes that cannot half-happen -----------------------------------------------------------------------

def leftovers(folder):
    return [p for p in folder.rglob("*.tmp")]


def test_disk_full_in_an_atomic_write_keeps_the_previous_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    atomic_write_text(target, "old")
    faults.disk_full(monkeypatch, free=2)
    with pytest.raises(KDError, match=r"The disk holding .* is full: 0\.1 MB needed.*previous 'summary.json' is "
                                      "intact"):
        atomic_write_text(target, "new content")
    assert target.read_text() == "old" and not leftovers(tmp_path)


def test_disk_full_during_a_run_is_one_sentence(tmp_path, monkeypatch, capsys):
    config.save(quick(), tmp_path / "c.toml")
    faults.disk_full(monkeypatch, free=20_000)  # the config and a few records fit, the first checkpoint does not
    err = one_error_line(capsys, ["run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r")])
    assert "is full" in err and not leftovers(tmp_path / "r")


def test_disk_full_on_a_real_small_disk_during_export(finished, tmp_path, capsys):
    with faults.small_tmpfs("64k") as disk:
        code = main(["export", str(finished), "--format", "torchscript", "--out", str(disk / "x")])
        err = capsys.readouterr().err
        assert code == 2 and "is full" in err and "unexpected" not in err, err
        assert not leftovers(disk)




def test_every_test_the_catalogue_names_exists():
    """docs/RELIABILITY.md names a test for each fault: a renamed or moved test must not leave a dead reference."""
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parent
    doc = (root.parent / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    refs = set(re.findall(r"\b(test_\w+)::(test_\w+)", doc))
    assert len(refs) > 50
    missing = [f"{mod}::{name}" for mod, name in sorted(refs)
               if not (root / f"{mod}.py").exists()
               or not re.search(rf"^def {name}\b", (root / f"{mod}.py").read_text(encoding="utf-8"), re.M)]
    assert not missing, missing
