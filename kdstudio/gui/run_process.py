"""The engine in a child process: the window's interpreter is then its own (opt-in: KDSTUDIO_RUN_IN=process).

In a QThread, the training thread and the window share one GIL; on a busy machine the OS preempts the training
thread while it holds the lock and the window cannot run a line of Python until it is scheduled again (stalls of
100-500 ms, benchmarks/bench_gui_stall.py). A spawned child has its own lock. The contract with the window stays
worker.RunWorker's: `control` (pause/resume/stop), `drain()`, the `done`/`failed` signals, `run()` called in the
run's QThread — which here only starts the child, forwards the control's state as messages and collects the
child's events, summary or error from a pipe. A child that dies without a word is one sentence.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback

from ..core import trust
from ..core.events import RunControl
from .worker import RunWorker

POLL_S = 0.05
NICE = 5  # the child yields the CPU to the window (and to the person's other programs): CFS weighs nice 5 ~3:1


def in_child_wanted() -> bool:
    """True when the run should go to a child process ($KDSTUDIO_RUN_IN=process)."""
    return os.environ.get("KDSTUDIO_RUN_IN", "").strip().lower() == "process"


def _child(conn, cfg, out_dir: str, resume: bool, grants=()) -> None:
    """The child's work: run the engine; events, then ("done", summary) or ("failed", message, details)."""
    import threading

    from ..core import trust
    from ..core.errors import KDError
    from ..core.pipeline import engine
    for path, sha in grants:  # the files the person trusted in the window (trust is per process)
        trust.grant(path, sha)
    control = RunControl()
    try:
        os.nice(NICE)
    except (AttributeError, OSError):  # no nice on Windows; a failure only costs the window's priority
        pass

    def listen():  # the parent's control messages: "pause", "resume", "stop"
        try:
            while True:
                getattr(control, conn.recv())()
        except (EOFError, OSError):
            control.stop()  # the window is gone: stop cleanly (a checkpoint is written)

    threading.Thread(target=listen, daemon=True).start()
    RunWorker._leave_a_core_for_the_window(_Emitter(conn))
    try:
        summary = engine.run(cfg, out_dir, on_event=lambda e: conn.send(("event", e)), control=control,
                             resume=resume)
    except KDError as e:
        conn.send(("failed", str(e), traceback.format_exc()))
    except BaseException as e:  # noqa: BLE001 - a bug must reach the window
        conn.send(("failed", f"Unexpected error: {e!r}. The details below help to report it.",
                   traceback.format_exc()))
    else:
        conn.send(("done", summary))


class _Emitter:
    """Stands in for the worker in _leave_a_core_for_the_window: its log line goes to the parent."""

    def __init__(self, conn):
        self.conn = conn

    def _on_event(self, e) -> None:
        self.conn.send(("event", e))


class ProcessWorker(RunWorker):
    """A RunWorker whose engine runs in a spawned child process."""

    def work(self) -> None:
        """The thread's work: start the child, relay control and events until it reports or dies."""
        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe()
        cfg = None if self.resume else self.cfg
        proc = ctx.Process(target=_child, args=(theirs, cfg, str(self.out_dir), self.resume, trust.grants()),
                           name="kdstudio-run", daemon=True)
        try:
            proc.start()
        except Exception as e:  # noqa: BLE001 - e.g. the config cannot be pickled, no processes left
            self.failed.emit(f"Cannot start the training process ({e}).", traceback.format_exc())
            return
        theirs.close()
        sent = (False, False)
        result = None
        try:
            while result is None:
                state = (self.control.paused, self.control.stop_requested)
                if state != sent:
                    if state[1] and not sent[1]:
                        ours.send("stop")
                    elif not state[1]:
                        ours.send("pause" if state[0] else "resume")
                    sent = state
                if ours.poll(POLL_S):
                    message = ours.recv()
                    if message[0] == "event":
                        self._on_event(message[1])
                    else:
                        result = message
                elif not proc.is_alive():
                    break
        except (EOFError, OSError):
            pass  # the child closed its end: it ended; its exit code says how
        proc.join(5)
        if result is None:
            code = proc.exitcode
            self.failed.emit(f"The training process ended unexpectedly (exit code {code}); the run folder keeps "
                             "its last checkpoint, so the run can be resumed.", "")
        elif result[0] == "done":
            self.done.emit(result[1])
        else:
            self.failed.emit(result[1], result[2])


def worker_class() -> type[RunWorker]:
    """The worker for a new run: in a child process when asked for, else in the run's thread."""
    return ProcessWorker if in_child_wanted() else RunWorker

