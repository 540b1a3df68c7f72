"""The `kdstudio` command: no arguments → the desktop app; subcommands → the headless core."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import signal
import sys
import traceback
from pathlib import Path

from .cli_args import parser
from .core.errors import KDError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as shells report a reader that closed the pipe


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if args.install_desktop_entry or args.uninstall_desktop_entry:
            return _desktop_entry(install=args.install_desktop_entry)
        if args.command in (None, "gui"):
            return _gui(args)
        if args.command == "init":
            return _init(args)
        if args.command == "eval":
            return _eval(args)
        if args.command == "export":
            return _export(args)
        if args.command == "report":
            return _report(args)
        if args.command == "label":
            return _label(args)
        if args.command == "launch-script":
            from .launch_scripts import write
            for path in write(args.config, nproc=args.nproc, nodes=args.nodes, out=args.out):
                print(f"written: {path}")
            return 0
        return _run(args)
    except KDError as e:
        if args.debug:
            traceback.print_exc()
        if not getattr(e, "said_by_rank_0", False):  # under torchrun: one sentence, not one per process
            print(f"kdstudio: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("kdstudio: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `kdstudio eval RUN | head`: the reader has gone, which is no error of ours
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_BROKEN_PIPE
    except Exception as e:  # a bug, not a user mistake: say so, keep the traceback behind --debug
        if args.debug:
            traceback.print_exc()
        print(f"kdstudio: unexpected error: {e!r}. Run again with --debug for the traceback and report it.",
              file=sys.stderr)
        return 1


def _display_problem() -> str | None:
    """Why Qt would abort (exit 134) instead of opening a window here, or None: no display on Linux, or X without
    the libxcb-cursor0 library that Qt 6.5+ needs for its xcb plugin (checked in a child process)."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or platform not in ("", "xcb"):
        return None
    if not os.environ.get("DISPLAY") and not (os.environ.get("WAYLAND_DISPLAY") and platform != "xcb"):
        return ("There is no display here (DISPLAY is not set), so the desktop app cannot open; use the command "
                "line (`kdstudio demo`, `kdstudio run CONFIG`), or connect with a display (ssh -X).")
    import ctypes.util
    if os.environ.get("WAYLAND_DISPLAY") and platform != "xcb" or ctypes.util.find_library("xcb-cursor"):
        return None
    import subprocess
    probe = subprocess.run([sys.executable, "-c", "from PySide6.QtWidgets import QApplication; QApplication([])"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode == 0:
        return None
    return ("Qt cannot open a window on this X display; it needs the libxcb-cursor0 library (Debian/Ubuntu: "
            "`sudo apt install libxcb-cursor0`). Until then use the command line (`kdstudio demo`, `kdstudio run "
            "CONFIG`).")


def _desktop_entry(install: bool) -> int:
    from . import desktop_entry
    if install:
        for path in desktop_entry.install():
            print(f"kdstudio: installed {path}")
        return 0
    removed = desktop_entry.uninstall()
    for path in removed:
        print(f"kdstudio: removed {path}")
    if not removed:
        print(f"kdstudio: no desktop entry to remove ({desktop_entry.desktop_file()} is not there)")
    return 0


def _gui(args) -> int:
    problem = _display_problem()
    if problem:
        raise KDError(problem)
    try:
        from .gui.app import main as gui_main
    except ImportError as e:
        if "kdstudio.gui" in str(e) or "No module named 'kdstudio.gui" in str(e):
            raise KDError("The desktop app is not available in this version yet; use `kdstudio demo` or "
                          "`kdstudio run CONFIG`.") from None
        raise KDError(f"The desktop app cannot start: {e}. Install PySide6 and pyqtgraph "
                      "(`pip install kdstudio`).") from None
    return gui_main(args)


def _init(args) -> int:
    from .core.store.files import atomic_write_text
    from .core.config.templates import starter_config_text
    path = Path(args.path)
    if path.exists() and not args.force:
        raise KDError(f"'{path}' already exists; choose another path or add --force to overwrite it.")
    try:
        atomic_write_text(path, starter_config_text(str(path)))  # its header's `kdstudio run` line names this file
    except OSError as e:
        raise KDError(f"Cannot write '{path}' ({e.strerror or e}); choose a folder you can write to.") from None
    print(f"Wrote {path}. Edit it, then run: kdstudio run {path}")
    return 0


def _grant_trust(files, cfg=None) -> None:
    """Trust each --trust FILE, and with a config given on this command line its run.trust_files (and its
    teacher.path when teacher.trust_pickle is on, as before per-file trust), with their content now."""
    from .core import trust
    paths = list(files)
    if cfg is not None:
        paths += [p for p in cfg.run.trust_files if isinstance(p, str) and p]
        if cfg.teacher.trust_pickle and cfg.teacher.path:
            paths.append(cfg.teacher.path)
    for p in paths:
        trust.grant(p)  # KDError with one sentence for a missing or unreadable file


def _eval(args) -> int:
    from .core.outputs.artifacts import evaluate_run
    _grant_trust(args.trust)
    from .core.outputs.gain import gain_sentence
    from .core.outputs.modelcard import metrics_table
    from .core.store import summary as summary_mod
    from .core.store.files import RunDir
    detail = evaluate_run(args.run_dir, latency_repeats=args.repeats,
                          on_model=lambda name: print(f"evaluating {name}…", file=sys.stderr))
    print("\n".join(metrics_table(detail["table"])))
    summary = summary_mod.read_dict(RunDir(args.run_dir).summary, {})
    if summary.get("kd_gain") is not None:
        print(f"KD gain {gain_sentence(summary.get('kd_gain_stats'), summary['kd_gain'])}")
    for note in detail.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    print(f"Wrote {Path(args.run_dir) / 'evaluation.json'} and updated summary.json.")
    return 0


def _label(args) -> int:
    from .core.store.run_labels import read_label, write_label
    if not Path(args.run_dir).is_dir():
        raise KDError(f"'{args.run_dir}' is not a run folder; give the folder a run wrote (e.g. kdstudio_runs/...).")
    label = read_label(args.run_dir) if args.name is None and args.note is None else \
        write_label(args.run_dir, name=args.name, note=args.note)
    print(f"name: {label['name'] or '(none: the start time shows)'}")
    print(f"note: {label['note'] or '(none)'}")
    return 0


def _report(args) -> int:
    from .core.outputs.report import write_report
    print(f"report written: {write_report(args.run_dir, args.out)}")
    return 0


def _export(args) -> int:
    from .core.outputs.artifacts import export_run
    _grant_trust(args.trust)
    from .core.outputs.export import EXTENSIONS
    from .core.outputs.modelcard import exports_table
    from .core.outputs.export import available_formats
    formats, skipped = [], []
    for item in args.format:
        for f in [part.strip() for part in item.split(",") if part.strip()]:
            if f != "all" and f not in EXTENSIONS:  # said before the run is loaded, with every valid value
                raise KDError(f"Export format '{f}' does not exist; use {', '.join(EXTENSIONS)} or all.")
            if f == "all":  # every format that works here; the optional ones that do not are named, not failed
                here = available_formats()
                formats += [a["format"] for a in here if a["available"]]
                skipped += [a for a in here if not a["available"]]
            else:
                formats.append(f)
    for a in skipped:
        if a["format"] not in formats:
            print(f"kdstudio: note: {a['format']} skipped: it {a['reason']}", file=sys.stderr)
    if not formats:
        raise KDError(f"--format needs a format: {', '.join(EXTENSIONS)} or all.")
    result = export_run(args.run_dir, list(dict.fromkeys(formats)), quantize=args.quantize, out=args.out,
                        force=args.force, model=args.model)
    if result["exports"]:
        print(f"Exported '{result['model']}' to {result['out']}:")
        print("\n".join(exports_table(result["exports"])))
    for f in result["failed"]:
        print(f"kdstudio: error: {f['format']} not exported: {f['error']}", file=sys.stderr)
    for note in result.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    return EXIT_USER_ERROR if result["failed"] else 0


def _run(args) -> int:
    from .core import config as config_mod
    from .core.config.templates import demo_config

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    resume = getattr(args, "resume", False)
    if getattr(args, "nproc", None) is not None:
        from .launch import torchrun
        return torchrun(args, args.argv, default_out=args.out or (
            None if resume or not args.config else f"kdstudio_runs/{Path(args.config).stem}-{stamp}"))
    from .launch import check_torchrun_args
    check_torchrun_args(args)
    if args.command == "demo":
        cfg = demo_config()
        out = Path(args.out or f"kdstudio_runs/demo-{stamp}")
        if os.environ.get("RANK", "0") == "0":  # under torchrun rank 0 checks (the others see its new folder)
            _check_demo_out(out)
    elif resume:
        if not args.out:
            raise KDError("--resume needs --out RUN_FOLDER: the folder of the run to continue.")
        cfg, out = None, Path(args.out)
    else:
        if not args.config:
            raise KDError("`kdstudio run` needs a config file, e.g. `kdstudio run kdstudio.toml` "
                          "(create one with `kdstudio init`).")
        cfg = config_mod.load(args.config)
        out = Path(args.out or f"kdstudio_runs/{Path(args.config).stem}-{stamp}")
    if cfg is not None:
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise KDError(f"--set '{item}' needs the form key.path=value, e.g. --set distill.lr=0.001.")
            cfg.set(key.strip(), value.strip())
        if args.device:
            cfg.set("device", args.device)
    elif args.set or args.device:
        raise KDError("--resume continues a run with its saved config; drop --set/--device.")
    saved = Path(out) / "config.toml"
    _grant_trust(args.trust, cfg if cfg is not None else
                 (config_mod.load(saved) if resume and saved.is_file() else None))
    return _execute(cfg, out, resume)


def _check_demo_out(out: Path) -> None:
    """`demo` has no --resume: a folder that already holds a run (or sweep) gets a sentence true for `demo`."""
    from .core.store.files import RunDir, read_json
    from .core.store.files import SWEEP_JSON, SWEEP_TOML
    rd = RunDir(out)
    sweep = (out / SWEEP_TOML).is_file()
    checkpoints = rd.has_checkpoints()
    if not (sweep or checkpoints or rd.config.exists()):
        return
    try:
        status = (read_json(out / SWEEP_JSON if sweep else rd.summary, None) or {}).get("status")
    except (OSError, ValueError):
        status = None
    if status != "completed" and (sweep or checkpoints):
        raise KDError(f"'{out}' already holds an unfinished run; continue it with `kdstudio run --resume --out "
                      f"{out}`, or choose another --out.")
    what = "a finished run" if status == "completed" else "a run"
    raise KDError(f"'{out}' already holds {what}; choose another --out or delete that folder.")


@contextlib.contextmanager
def _ctrl_c_stops(control):
    """While inside: the first Ctrl-C asks the engine to stop cleanly (checkpoint first), a second one quits."""
    interrupted = []

    def on_sigint(signum, frame):
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)
        print("\nStopping after this step (Ctrl-C again to quit at once)…", file=sys.stderr)
        control.stop()

    from .core.train.distributed import requested
    # under torchrun a SIGTERM (torchrun forwards its own; or one sent to a rank) stops every rank at one step too
    signals = (signal.SIGINT, signal.SIGTERM) if requested() else (signal.SIGINT,)
    previous = {s: signal.signal(s, on_sigint) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _execute(cfg, out: Path, resume: bool) -> int:
    """Run (or resume) one run or a sweep through the engine's one entry point, with progress on stderr."""
    from .core import events
    from .core.pipeline import engine
    from .progress import ProgressPrinter

    from .core.store.pause_file import FolderControl
    from .core.train import distributed
    # the process that writes the run folder also pauses while it holds a `pause` file (`touch RUN/pause`; the
    # window's GPUs > 1 run pauses this way); under torchrun it shares that with the other ranks at each step
    control = FolderControl(out) if distributed.is_main() else events.RunControl()
    if not distributed.is_main():  # under torchrun rank 0 alone shows progress and the summary
        with _ctrl_c_stops(control):
            result = engine.run(cfg, out, control=control, resume=resume)
        return EXIT_INTERRUPTED if result["status"] == "stopped" else 0
    printer = ProgressPrinter()
    try:
        with _ctrl_c_stops(control):
            result = engine.run(cfg, out, on_event=printer, control=control, resume=resume)
    finally:
        printer.close()
    if printer.is_sweep:
        from .core.pipeline import sweep
        print(sweep.format_table(result), end="")
        print(f"Sweep {result['status']}. Folder: {out} (sweep.json, sweep.md, one run folder per point and seed)")
    else:
        printer.print_summary(result, out)
    return EXIT_INTERRUPTED if result["status"] == "stopped" else 0

if __name__ == "__main__":
    sys.exit(main())
