"""The `kdstudio` command line's grammar: the app's flags and each subcommand's arguments (cli.py runs them)."""

from __future__ import annotations

import argparse

from . import __version__


def parser() -> argparse.ArgumentParser:
    """The whole command line: the app's own flags and every subcommand's."""
    debug = argparse.ArgumentParser(add_help=False)  # every subcommand takes --debug, as the app itself does
    debug.add_argument("--debug", action="store_true", help="show tracebacks")
    p = argparse.ArgumentParser(prog="kdstudio", description="KD Studio: knowledge distillation workbench. "
                                "Without a command it opens the desktop app.")
    p.add_argument("--version", action="version", version=f"kdstudio {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    entry = p.add_mutually_exclusive_group()
    entry.add_argument("--install-desktop-entry", action="store_true",
                       help="add KD Studio to this user's application menu (XDG .desktop file and icon)")
    entry.add_argument("--uninstall-desktop-entry", action="store_true",
                       help="remove what --install-desktop-entry added")
    sub = p.add_subparsers(dest="command")

    r = sub.add_parser("run", parents=[debug], help="run a distillation from a TOML config")
    r.add_argument("config", nargs="?", help="path of the config file (see `kdstudio init`); not needed with --resume")
    r.add_argument("--out", help="run folder (default: kdstudio_runs/<config>-<time>)")
    r.add_argument("--device", help="override the config's device (auto, cpu, cuda, cuda:N, mps)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set distill.temperature=2 (repeatable)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    r.add_argument("--trust", action="append", default=[], metavar="FILE",
                   help="trust this TorchScript, pickle or file.py (its current content): it may run (repeatable)")
    dd = r.add_argument_group("distributed (PyTorch DDP through torchrun; data.batch_size is per process)")
    dd.add_argument("--nproc", type=int, metavar="N", help="train on N processes of this machine (one per GPU, or "
                    "gloo on the CPU): starts `python -m torch.distributed.run --nproc-per-node N -m kdstudio run …`")
    for flag, what in (("--nnodes", "machines taking part (torchrun's --nnodes)"),
                       ("--node-rank", "this machine's rank among them (torchrun's --node-rank)"),
                       ("--master-addr", "address of the rank-0 machine (torchrun's --master-addr)"),
                       ("--master-port", "its port (torchrun's --master-port)")):
        dd.add_argument(flag, help=what + "; only with --nproc")

    d = sub.add_parser("demo", parents=[debug], help="the built-in digits demo, end to end")
    d.add_argument("--out", help="run folder (default: kdstudio_runs/demo-<time>)")
    d.add_argument("--device", help="device override (auto, cpu, cuda, cuda:N, mps)")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
    d.add_argument("--trust", action="append", default=[], metavar="FILE",
                   help="trust this TorchScript, pickle or file.py (its current content): it may run (repeatable)")

    i = sub.add_parser("init", parents=[debug], help="write a commented starter config")
    i.add_argument("path", nargs="?", default="kdstudio.toml", help="where to write it (default kdstudio.toml)")
    i.add_argument("--force", action="store_true", help="overwrite an existing file")

    e = sub.add_parser("eval", parents=[debug], help="evaluate every model of a finished run again (table, evaluation.json)")
    e.add_argument("run_dir", help="the run folder")
    e.add_argument("--repeats", type=int, help="timed passes per latency figure (default: the run's config)")
    e.add_argument("--trust", action="append", default=[], metavar="FILE",
                   help="trust this TorchScript, pickle or file.py (its current content): it may run (repeatable)")

    x = sub.add_parser("export", parents=[debug], help="export a finished run's student, reloaded and checked in each runtime")
    x.add_argument("run_dir", help="the run folder")
    x.add_argument("--format", action="append", required=True, metavar="F",
                   help="torchscript, onnx, safetensors, state_dict, torch_export, openvino, executorch or all (the "
                   "installed ones; repeatable, or comma-separated)")
    x.add_argument("--quantize", default="none", choices=("none", "int8", "fp16", "bf16"),
                   help="export int8 or half-precision weights")
    x.add_argument("--model", default="auto", help="student, finetune, prune, channels (default: auto = last "
                   "float compression variant, else the student)")
    x.add_argument("--out", help="folder for the files (default: RUN_DIR/exports)")
    x.add_argument("--force", action="store_true", help="overwrite existing files")
    x.add_argument("--trust", action="append", default=[], metavar="FILE",
                   help="trust this TorchScript, pickle or file.py (its current content): it may run (repeatable)")

    rp = sub.add_parser("report", parents=[debug], help="write a one-page HTML report of a finished run (curves, evaluation, "
                        "confusion, KD gain with its uncertainty, model card) to mail or archive")
    rp.add_argument("run_dir", help="the run folder")
    rp.add_argument("--out", help="where to write it (default: RUN_DIR/report.html)")

    lb = sub.add_parser("label", parents=[debug], help="name a run and note what it tried (run.json; the window's runs table shows "
                        "them); without --name or --note, print them")
    lb.add_argument("run_dir", help="the run folder")
    lb.add_argument("--name", help="the run's name (\"\" clears it: the start time shows again)")
    lb.add_argument("--note", help="a note on the run (\"\" clears it)")

    ls = sub.add_parser("launch-script", parents=[debug], help="write run.sh (torchrun on this machine's GPUs) and run.sbatch (SLURM) "
                        "next to a config, for a run designed in the window")
    ls.add_argument("config", help="the config (a project's project.toml, or a run config)")
    ls.add_argument("--nproc", type=int, default=1, help="processes per machine, one per GPU (default 1)")
    ls.add_argument("--nodes", type=int, default=1, help="machines for the SLURM script (default 1)")
    ls.add_argument("--out", default="", help="the run folder both scripts write (default runs/<config>-ddp)")

    g = sub.add_parser("gui", parents=[debug], help="open the desktop app")
    g.add_argument("--demo", action="store_true", help="open (or create) the Digits demo project")
    g.add_argument("--autorun", action="store_true", help="start the run at once")
    g.add_argument("--quit-when-done", action="store_true", help="quit when the run ends")
    g.add_argument("--screenshot", metavar="PATH", help="save a PNG of the window when the run ends")
    g.add_argument("--theme", choices=("auto", "light", "dark"),
                   help="colours: follow the OS (auto, the default), or force light or dark")
    return p
