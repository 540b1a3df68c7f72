"""The engine in a child process: the window's interpreter is then its own (the default; KDSTUDIO_RUN_IN=thread
runs it in a thread of the window instead).

In a QThread, the training thread and the window share one GIL; on a busy machine the OS preempts the training
thread while it holds the lock and the window cannot run a line of Python until it is scheduled again (stalls of
100-500 ms, benchmarks/bench_gui_stall.py). A spawned child has its own lock. The contract with the window stays
worker.RunWorker's: `control` (pause/resume/stop), `drain()`, the `done`/`failed` signals, `run()` called in the
run's QThread — which here only starts the child and waits for it; `drain()` (GUI thread) forwards the control's
state as messages and reads the child's events, summary or error from a pipe. A child that dies without a word is
one sentence.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback

from ..core import trust
from ..core.events import RunControl
from .worker import RunWorker

EXIT_GRACE_S = 5.0  # how long a child that has reported may take to exit before it is ended
DEFAULT_RUN_IN = "process"  # "thread" | "process"; $KDSTUDIO_RUN_IN overrides
# The child yields the CPU to the window: CFS weighs nice 2 ~1.6:1. Measured beside two busy loops
# (benchmarks/README.md): at nice 2 the window's p99 stall was 54-58 ms and the run as fast as in a thread; at
# nice 0, 94-131 ms; at nice 5, 63-70 ms but the run ~3x slower (it yields to every other program too).
NICE = 2


def in_child_wanted() -> bool:
    """True when the run should go to a child process ($KDSTUDIO_RUN_IN, else DEFAULT_RUN_IN)."""
    asked = os.environ.get("KDSTUDIO_RUN_IN", "").strip().lower()
    return (asked if asked in ("thread", "process") else DEFAULT_RUN_IN) == "process"


def child_nice() -> int:
    """How much nicer than the window the child runs ($KDSTUDIO_RUN_NICE, else NICE; 0 = the same)."""
    try:
        return max(0, int(os.environ.get("KDSTUDIO_RUN_NICE", "").strip()))
    except ValueError:
        return NICE


def _child(conn, cfg, out_dir: str, resume: bool, grants=(), nice: int = NICE) -> None:
    """The child's work: run the engine; events, then ("done", summary) or ("failed", message, details)."""
    import threading

    from ..core import trust
    from ..core.errors import KDError
    from ..core.pipeline import engine
    for path, sha in grants:  # the files the person trusted in the window (trust is per process)
        trust.grant(path, sha)
    control = RunControl()
    try:
        if nice:
            os.nice(nice)
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
    """A RunWorker whose engine runs in a spawned child process.

    The run's QThread only starts the child and waits for it to exit (without the interpreter lock). The pipe is
    read, and pause/stop are sent, by `drain()` in the GUI thread, on RunThread's 50 ms timer: no second Python
    thread in the window's process takes the lock during a run, so the OS cannot preempt one while it holds the
    lock and the window waits (the stall a thread of the window had, in small).
    """

    def __init__(self, cfg, out_dir, resume: bool = False):
        super().__init__(cfg, out_dir, resume)
        self._conn = None          # our end of the pipe, once the child has started
        self._exit_code = None     # set (by the run's thread) once the child has exited
        self._sent = (False, False)  # (paused, stop requested) as last told to the child
        self._reported = False     # "done" or "failed" has been emitted
        self._reported_at = 0.0    # when (time.monotonic) the child reported

    def work(self) -> None:
        """The thread's work: start the child, wait until it exits, end the thread's event loop."""
        from PySide6.QtCore import QThread
        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe()
        cfg = None if self.resume else self.cfg
        proc = ctx.Process(target=_child, args=(theirs, cfg, str(self.out_dir), self.resume, trust.grants(),
                                                    child_nice()),
                           name="kdstudio-run", daemon=True)
        try:
            proc.start()
        except Exception as e:  # noqa: BLE001 - e.g. the config cannot be pickled, no processes left
            self._reported = True
            self.failed.emit(f"Cannot start the training process ({e}).", traceback.format_exc())
            return
        theirs.close()
        self._conn = ours
        while proc.is_alive():  # the lock is released while join waits; taken twice a second
            proc.join(0.5)
            if self._reported_at and time.monotonic() - self._reported_at > EXIT_GRACE_S and proc.is_alive():
                proc.terminate()  # it has said how it ended; something in it (a stuck worker) keeps it alive
                proc.join(EXIT_GRACE_S)
                break
        self._exit_code = proc.exitcode if proc.exitcode is not None else -1
        QThread.currentThread().quit()  # RunThread's last drain (GUI thread) reads what the child left

    def drain(self) -> list:
        """Tell the child a change of pause/stop, then read every message it has sent (GUI thread): events are
        returned, its summary or error emitted as done/failed; a child gone without either is one sentence."""
        events = super().drain()
        conn, exited = self._conn, self._exit_code is not None
        if conn is None:
            return events
        if self._reported and exited:  # nothing comes after the summary or the error
            conn.close()
            self._conn = None
            return events
        try:
            self._send_control(conn)
            while conn.poll(0):
                message = conn.recv()
                if message[0] == "event":
                    events.append(message[1])
                elif not self._reported:
                    self._reported, self._reported_at = True, time.monotonic()
                    if message[0] == "done":
                        self.done.emit(message[1])
                    else:
                        self.failed.emit(message[1], message[2])
        except (EOFError, OSError):
            exited = exited or self._exit_code is not None  # the child closed its end: it has ended
        if exited and not self._reported:
            self._reported = True
            self.failed.emit(f"The training process ended unexpectedly (exit code {self._exit_code}); the run "
                             "folder keeps its last checkpoint, so the run can be resumed.", "")
        if self._reported and exited:
            conn.close()
            self._conn = None
        return events

    def _send_control(self, conn) -> None:
        state = (self.control.paused, self.control.stop_requested)
        if state != self._sent:
            if state[1] and not self._sent[1]:
                conn.send("stop")
            elif not state[1]:
                conn.send("pause" if state[0] else "resume")
            self._sent = state


def worker_class() -> type[RunWorker]:
    """The worker for a new run: in a child process when asked for, else in the run's thread."""
    return ProcessWorker if in_child_wanted() else RunWorker

