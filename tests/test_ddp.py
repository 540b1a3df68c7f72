"""The same run on 2 processes (torchrun + DDP, gloo on the CPU): one run folder, the same shapes, the same accuracy
as one process with the same global batch, and a checkpoint that loads in one process."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdstudio.cli import main
from kdstudio.core import config, models
from kdstudio.core.pipeline import engine
from kdstudio.core.store.files import read_metrics
from kdstudio.core.train.checkpoints import read_checkpoint
from kdstudio.launch import torchrun_command
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parent.parent
PER_PROCESS_BATCH = 32  # 2 processes × 32 = the one-process run's 64


WRITTEN: list[str] = []  # what the fixture's DDP run left in its parent folder

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def cfg_path(tmp_path_factory):
    """The tiny digits config as a file, on the CPU."""
    path = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    config.save(tiny_config(device="cpu"), path)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cfg_path):
    """(DDP run folder, its parent, one-process run folder), the DDP run started by `kdstudio run --nproc 2`."""
    parent = tmp_path_factory.mktemp("ddp")
    out = parent / "run"
    env = ENV
    done = subprocess.run([sys.executable, "-m", "kdstudio", "run", str(cfg_path), "--out", str(out), "--nproc", "2",
                           "--set", f"data.batch_size={PER_PROCESS_BATCH}"], env=env, capture_output=True,
                          text=True, timeout=240, cwd=parent)
    assert done.returncode == 0, done.stderr[-3000:]
    one = tmp_path_factory.mktemp("one") / "run"
    engine.run(tiny_config(device="cpu"), one)
    WRITTEN[:] = sorted(p.name for p in parent.iterdir())  # before later tests add runs beside it
    return out, parent, one


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def _shape(value):
    """The keys of a JSON value, recursively (lists by their first element), without the values."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def test_two_processes_write_one_run_folder(runs):
    out, parent, _ = runs
    assert WRITTEN == ["run", "teachers"]  # rank 1 made no folder of its own; rank 0 stored the teacher
    summary = _summary(out)
    assert summary["status"] == "completed" and summary["device"] == "cpu × 2 processes (gloo)"
    assert config.load(out / "config.toml").data.batch_size == PER_PROCESS_BATCH
    for stage in ("teacher", "distill", "baseline"):
        assert (out / "checkpoints" / f"{stage}.pt").is_file()
    log = (out / "log.txt").read_text()
    assert log.count("Test accuracy:") == 1 and log.count("Data 'digits'") == 1  # one rank wrote the log
    # the teacher's cached outputs: each rank's teacher saw its own block of the training samples, once
    line = next(x for x in log.splitlines() if "Teacher-output cache on: logits of" in x)
    found = re.search(r"logits of ([\d,]+) training samples .* by 2 processes: ([\d,]+) \+ ([\d,]+) samples", line)
    total, *parts = (int(g.replace(",", "")) for g in found.groups())
    assert sum(parts) == total and max(parts) - min(parts) <= 1, line


def test_summary_and_metrics_have_the_shape_of_a_one_process_run(runs):
    out, _, one = runs
    ddp, single = _summary(out), _summary(one)
    assert ddp["teacher"]["stored_id"]  # rank 0 kept the teacher for later runs, as one process does
    assert _shape(ddp) == _shape(single)
    ddp_steps, one_steps = read_metrics(out / "metrics.jsonl"), read_metrics(one / "metrics.jsonl")

    def kinds(records):
        return {(r["kind"], r["stage"], tuple(sorted(r))) for r in records}
    assert kinds(ddp_steps) == kinds(one_steps)
    epochs = [r for r in ddp_steps if r["kind"] == "epoch"]
    assert [(r["stage"], r["epoch"]) for r in epochs] == \
        [(r["stage"], r["epoch"]) for r in one_steps if r["kind"] == "epoch"]  # each epoch logged once


def test_accuracy_matches_one_process_with_the_same_global_batch(runs):
    out, _, one = runs
    ddp, single = _summary(out), _summary(one)
    for who in ("teacher", "student", "baseline"):
        assert abs(ddp[who]["accuracy"] - single[who]["accuracy"]) <= 0.05, who
    first = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "step"][0]
    first_one = [r for r in read_metrics(one / "metrics.jsonl") if r["kind"] == "step"][0]
    # the union of the ranks' first batches is the one-process first batch: the same loss, up to batch norm
    assert first["step"] == first_one["step"] and first["ce"] == pytest.approx(first_one["ce"], abs=0.01)


def test_ddp_checkpoint_loads_in_one_process(runs):
    out, _, _ = runs
    cfg = config.load(out / "config.toml")
    state = read_checkpoint(out / "checkpoints" / "distill.pt", need=("model",))
    assert not any(k.startswith("module.") for k in state["model"])  # the unwrapped student
    student = models.build_student(cfg, 10, (1, 8, 8))
    student.load_state_dict(state["model"])  # strict: every key fits
    from kdstudio.core.data import load_data
    from kdstudio.core.outputs.evaluate import accuracy
    bundle = load_data(cfg)
    assert accuracy(student, bundle.x_test, bundle.y_test) == pytest.approx(_summary(out)["student"]["accuracy"])


def test_nproc_builds_the_torchrun_command_and_passes_its_flags():
    argv = ["run", "c.toml", "--nproc", "4", "--nnodes=2", "--node-rank", "1", "--master-addr", "10.0.0.1",
            "--set", "seed=3"]

    class Args:
        nproc, out, nnodes, node_rank, master_addr, master_port = 4, None, "2", "1", "10.0.0.1", None
    cmd = torchrun_command(Args, argv, default_out="kdstudio_runs/c-1")
    assert cmd[:5] == [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "4"]
    assert cmd[cmd.index("--nnodes") + 1] == "2" and cmd[cmd.index("--node-rank") + 1] == "1"
    assert "--standalone" not in cmd  # more than one machine: the rendezvous is the master's
    assert cmd[cmd.index("-m", 3):] == ["-m", "kdstudio", "run", "c.toml", "--set", "seed=3", "--out",
                                       "kdstudio_runs/c-1"]


def test_torchrun_flags_without_nproc_are_one_sentence(capsys, tmp_path):
    path = tmp_path / "c.toml"
    config.save(tiny_config(), path)
    assert main(["run", str(path), "--nnodes", "2", "--out", str(tmp_path / "r")]) == 2
    assert "--nnodes only goes with --nproc" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def _rank_pids(torchrun_pid: int) -> dict[int, int]:
    """{local rank: pid} of the workers torchrun started (Linux /proc)."""
    kids = Path(f"/proc/{torchrun_pid}/task/{torchrun_pid}/children").read_text().split()
    ranks = {}
    for pid in kids:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        local = [e for e in env if e.startswith(b"LOCAL_RANK=")]
        if local:
            ranks[int(local[0].split(b"=")[1])] = int(pid)
    return ranks


def _start_ranks(cfg_path: Path, out: Path, *extra: str, env=None) -> subprocess.Popen:
    """torchrun with 2 ranks on the fixture's config and teacher (the stored one is reused: no teacher training)."""
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "kdstudio", "run", str(cfg_path), "--out", str(out), "--set",
                             f"data.batch_size={PER_PROCESS_BATCH}", "--set", "baseline.enabled=false", "--set",
                             "export.formats=[]", "--set", "evaluate.latency_repeats=0", *extra],
                            env=env or ENV, cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _ranks_once_distilling(torchrun: subprocess.Popen, out: Path) -> dict[int, int]:
    """Wait until the run logs its first distill step; {local rank: pid} of its workers."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and torchrun.poll() is None and '"stage": "distill"' not in (
            (out / "metrics.jsonl").read_text() if (out / "metrics.jsonl").is_file() else ""):
        time.sleep(0.2)
    assert torchrun.poll() is None, torchrun.communicate()[0][-3000:]
    ranks = _rank_pids(torchrun.pid)
    assert sorted(ranks) == [0, 1]
    return ranks


LINUX_PROC = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the ranks through Linux's /proc")


@LINUX_PROC
def test_sigterm_to_rank_0_stops_every_rank_at_one_step_and_resume_continues_on_two(runs, cfg_path, capsys):
    out = runs[1] / "stopped"  # beside the fixture's run: its stored teacher is reused on both ranks
    torchrun = _start_ranks(cfg_path, out, "--set", "distill.epochs=20")
    try:
        os.kill(_ranks_once_distilling(torchrun, out)[0], signal.SIGTERM)
        log = torchrun.communicate(timeout=120)[0]
    finally:
        if torchrun.poll() is None:
            torchrun.kill()
    # rank 1 stopped at the same step: had it gone on, its next all-reduce would have lost rank 0 (torchrun may
    # still end it with a SIGTERM on its way out, once rank 0 has exited)
    assert "lost the other processes" not in log and "exitcode  : 130" in log, log[-3000:]
    summary = _summary(out)
    assert summary["status"] == "stopped" and summary["teacher"]["reused_from"] == "run"
    saved = read_checkpoint(out / "checkpoints" / "distill.pt")
    assert not saved["complete"] and saved["world"] == 2
    # its positions count two ranks' steps: one process refuses to continue it, in one sentence
    assert main(["run", "--resume", "--out", str(out)]) == 2
    assert "in a run on 2 process(es)" in capsys.readouterr().err
    done = subprocess.run([sys.executable, "-m", "kdstudio", "run", "--resume", "--out", str(out), "--nproc", "2"],
                          env=ENV, capture_output=True, text=True, timeout=240, cwd=out.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = _summary(out)
    assert summary["status"] == "completed" and summary["resumed"] and summary["student"]["accuracy"] > 0.5
    final = read_checkpoint(out / "checkpoints" / "distill.pt")
    assert final["complete"] and final["world"] == 2
    epochs = [r["epoch"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "epoch"
              and r["stage"] == "distill"]
    assert epochs == list(range(1, 21))  # each epoch once: the resume went on from the stopped one


@LINUX_PROC
def test_a_killed_rank_ends_the_other_with_one_sentence(runs, cfg_path):
    out = runs[1] / "killed"
    env = {**ENV, "KDSTUDIO_DIST_TIMEOUT": "20"}  # a peer that stays silent this long counts as lost
    torchrun = _start_ranks(cfg_path, out, "--set", "distill.epochs=60", env=env)
    try:
        os.kill(_ranks_once_distilling(torchrun, out)[1], signal.SIGKILL)
        log = torchrun.communicate(timeout=90)[0]  # not a hang: well before the 300 s default timeout
    finally:
        if torchrun.poll() is None:
            torchrun.kill()
    assert torchrun.returncode != 0
    summary = _summary(out)
    assert summary["status"] == "failed", log[-3000:]
    assert summary["error"].startswith("Rank 0 of this distributed run lost the other processes"), summary["error"]
    assert "continue with `kdstudio run --resume --out RUN --nproc 2`" in summary["error"]
    assert "Traceback" not in (out / "log.txt").read_text()


def test_a_refused_folder_is_one_sentence_from_all_ranks(runs, cfg_path):
    out, _, _ = runs
    before = (out / "summary.json").read_bytes()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "kdstudio", "run", str(cfg_path), "--out", str(out)],
                          env=ENV, capture_output=True, text=True, timeout=120, cwd=out.parent)
    assert done.returncode != 0
    assert done.stderr.count("kdstudio: error:") == 1 and "already holds a run" in done.stderr  # rank 0's, once
    assert (out / "summary.json").read_bytes() == before


def _cuda_devices() -> int:
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.skipif(_cuda_devices() < 2, reason="needs 2 CUDA devices (NCCL); this machine has fewer")
def test_two_gpus_with_nccl_match_one_gpu_with_the_same_global_batch(tmp_path):
    """The GPU path the CPU tests cannot reach: NCCL's all-reduce and all-gather, one device per rank."""
    path = tmp_path / "gpu.toml"
    config.save(tiny_config(device="cuda"), path)
    out = tmp_path / "ddp"
    done = subprocess.run([sys.executable, "-m", "kdstudio", "run", str(path), "--out", str(out), "--nproc", "2",
                           "--set", f"data.batch_size={PER_PROCESS_BATCH}"], env=ENV, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    one = tmp_path / "one"
    engine.run(tiny_config(device="cuda"), one)
    ddp, single = _summary(out), _summary(one)
    assert ddp["status"] == "completed" and ddp["device"].endswith("× 2 processes (nccl)"), ddp["device"]
    assert abs(ddp["student"]["accuracy"] - single["student"]["accuracy"]) <= 0.05
    assert read_checkpoint(out / "checkpoints" / "distill.pt")["world"] == 2
