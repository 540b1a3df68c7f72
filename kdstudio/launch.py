"""`kdstudio run CONFIG --nproc N`: start the same command on N processes through torchrun (PyTorch's launcher).

Nothing here trains: it builds `python -m torch.distributed.run --nproc-per-node N [--nnodes … --node-rank …
--master-addr … --master-port …] -m kdstudio run …` and waits for it, so a distributed run takes exactly the code
path of `torchrun … -m kdstudio run …` typed by hand (core/train/distributed.py joins the processes).
"""

from __future__ import annotations

import signal
import subprocess
import sys

from .core.errors import KDError

PASSED = ("--nnodes", "--node-rank", "--master-addr", "--master-port")  # torchrun's own flags, passed through
OURS = ("--nproc", *PASSED)


def _without_launch_flags(argv: list[str]) -> list[str]:
    """argv without --nproc and the torchrun flags (`--flag V` and `--flag=V` alike)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in OURS:
            skip = True
        elif not a.startswith(tuple(f + "=" for f in OURS)):
            out.append(a)
    return out


def torchrun_command(args, argv: list[str], default_out: str | None) -> list[str]:
    """The torchrun command line that runs this `kdstudio run` on args.nproc processes per machine."""
    from .core.train.distributed import requested
    if requested():
        raise KDError("--nproc starts torchrun itself; this process already runs under torchrun, so drop --nproc.")
    if args.nproc < 1:
        raise KDError(f"--nproc {args.nproc} must be 1 or more (processes on this machine: one per GPU, or a few "
                      "on the CPU).")
    rest = _without_launch_flags(argv)
    if default_out and not args.out:  # every process must write the one folder: its name is fixed here, once
        rest += ["--out", default_out]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(args.nproc)]
    given = {f: getattr(args, f[2:].replace("-", "_")) for f in PASSED}
    for flag, value in given.items():
        if value is not None:
            cmd += [flag, str(value)]
    if given["--nnodes"] in (None, "1") and given["--master-addr"] is None:
        cmd.append("--standalone")  # one machine: torchrun picks a free port, so two runs never collide
    return cmd + ["-m", "kdstudio", *rest]


def torchrun(args, argv: list[str], default_out: str | None) -> int:
    """Run the torchrun command and return its exit code; Ctrl-C reaches the ranks (they stop at the same step)."""
    cmd = torchrun_command(args, argv, default_out)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C goes to the ranks too
    try:
        return subprocess.call(cmd)
    finally:
        signal.signal(signal.SIGINT, previous)


def check_torchrun_args(args) -> None:
    """Refuse torchrun flags without --nproc, and a distributed run without --out (each rank would pick its own)."""
    from .core.train.distributed import requested
    for flag in PASSED:
        if getattr(args, flag[2:].replace("-", "_"), None) is not None:
            raise KDError(f"{flag} only goes with --nproc N (the processes to start on this machine).")
    if requested() and not getattr(args, "out", None):
        raise KDError("Under torchrun give --out RUN_FOLDER: every process must use the same run folder.")


def local_command(config: str | None, out: str, nproc: int, resume: bool = False,
                  trust: list[str] | tuple = ()) -> list[str]:
    """`kdstudio run CONFIG --out OUT --nproc N` (or `run --resume --out OUT --nproc N`) as the torchrun command
    line, built as the CLI builds it (the window's GPUs > 1 runs start this)."""
    import argparse
    argv = ["run"] + ([] if resume or config is None else [str(config)]) + ["--out", str(out)]
    argv += ["--resume"] if resume else []
    for path in trust:
        argv += ["--trust", str(path)]
    args = argparse.Namespace(nproc=nproc, out=str(out), nnodes=None, node_rank=None, master_addr=None,
                              master_port=None)
    return torchrun_command(args, argv + ["--nproc", str(nproc)], default_out=None)
