"""A run on N processes from the window (Train page, GPUs > 1): torchrun as a subprocess, followed from its folder.

The contract with the window stays worker.RunWorker's (`control`, `drain()`, `done`/`failed`, `run()` in the
run's QThread). `work` starts `kdstudio run CONFIG --nproc N --out RUN` exactly as the CLI builds it
(launch.local_command) in its own process group, with the window's trusted files as `--trust`; then, until the
processes end, it reads the events rank 0 appends to the run folder's events.jsonl (store/event_log.py) into the
same buffer the in-process worker fills, so every page works unchanged. Pause and resume are the run folder's
`pause` file (store/pause_file.py, shared with every rank each step); Stop is a SIGTERM to torchrun, which forwards
it (every rank stops at one step, rank 0 writes one checkpoint). Processes that end without a RunFinished or
RunFailed event are one sentence, never a hang.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from ..core import config as config_mod
from ..core import trust
from ..core.errors import KDError
from ..core.events import LOG, RUN_FAILED, RUN_FINISHED, Event
from ..core.store.event_log import EventFollower
from ..core.store.files import RunDir
from ..core.store.pause_file import request_pause
from .worker import RunWorker

POLL_S = 0.1        # how often the folder is read and the controls are looked at
GRACE_S = 120       # after a stop (or the last event), how long the processes get to end before they are killed
ERROR_PREFIX = "kdstudio: error: "


def trusted_now() -> list[str]:
    """The files trusted in this window whose content is still the one trusted (each becomes a --trust)."""
    paths = []
    for path, sha in trust.grants():
        try:
            if trust.digest(path) == sha:
                paths.append(path)
        except KDError:  # gone or unreadable: the run will say so when it needs the file
            pass
    return paths


def _child_env() -> dict:
    """The window's environment, with this kdstudio first on the path (the ranks run the window's code)."""
    import site
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    installed = {str(Path(p).resolve()) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if root not in installed:  # a source checkout: ahead of any installed copy (site-packages is found anyway)
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def said_error(log: Path) -> str | None:
    """The last one-sentence error the run's processes printed (`kdstudio: error: …`), if any."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    lines = [line.split(ERROR_PREFIX, 1)[1].strip() for line in text.splitlines() if ERROR_PREFIX in line]
    first_cause = [line for line in lines if "lost the other processes" not in line]  # not a rank left behind
    return (first_cause or lines or [None])[0]


def _tail(log: Path, chars: int = 4000) -> str:
    try:
        return log.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


class TorchrunWorker(RunWorker):
    """A RunWorker whose engine runs on `nproc` processes under torchrun, followed from the run folder."""

    def __init__(self, cfg, out_dir: Path, resume: bool = False, nproc: int = 2):
        super().__init__(cfg, out_dir, resume)
        self.nproc = nproc
        self.proc: subprocess.Popen | None = None

    def work(self) -> None:
        """The thread's work: start torchrun, follow its events, relay pause/stop, report how it ended."""
        rd = RunDir(self.out_dir)
        try:
            self.proc = self._start(rd)
        except (KDError, OSError) as e:
            self.failed.emit(f"Cannot start the {self.nproc} training processes ({e}).", traceback.format_exc())
            return
        result = self._follow(rd, EventFollower(rd.events, from_end=self.resume))
        request_pause(rd.root, False)  # a later resume must not start paused
        if result is None:
            code = self.proc.returncode
            said = said_error(rd.launch_log)
            logs = " and ".join(p.name for p in (rd.log, rd.launch_log) if p.is_file()) or rd.launch_log.name
            self.failed.emit(said or f"The {self.nproc} training processes ended unexpectedly (exit code {code}); "
                                     f"see {logs} in the run folder.", _tail(rd.launch_log))
        elif result[0] == "done":
            self.done.emit(result[1])
        else:
            self.failed.emit(result[1], result[2])

    def _start(self, rd: RunDir) -> subprocess.Popen:
        """Write the config the ranks read (the folder's config.toml, which the engine keeps) and start torchrun."""
        from ..launch import local_command
        request_pause(rd.root, False)  # one left by a window that died must not pause this run
        if not self.resume:
            rd.root.mkdir(parents=True, exist_ok=True)
            config_mod.save(self.cfg, rd.config)
        cmd = local_command(None if self.resume else str(rd.config), str(rd.root), self.nproc,
                            resume=self.resume, trust=trusted_now())
        self._on_event(Event(LOG, None, {"message": f"Starting {self.nproc} training processes with torchrun "
                                                    f"(DDP); their output goes to {rd.launch_log.name}."}))
        with open(rd.launch_log, "ab") as log:
            return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=_child_env(), start_new_session=True)  # its own group: the window's
            # Ctrl-C or a terminal's hang-up does not reach it; Stop does, as one SIGTERM

    def _follow(self, rd: RunDir, follower: EventFollower):
        """Relay the controls and read the events until the processes have ended; the result, or None."""
        sent, result, deadline = (False, False), None, None
        while True:
            state = (self.control.paused, self.control.stop_requested)
            if state != sent:
                if state[1] and not sent[1]:
                    self._signal(signal.SIGTERM)
                    deadline = time.monotonic() + GRACE_S
                elif not state[1]:
                    request_pause(rd.root, state[0])
                sent = state
            ended = self.proc.poll() is not None  # read once more after the end: what rank 0 wrote last
            result = self._take(follower.poll(), result)
            if ended:
                return result
            if result is not None and deadline is None:
                deadline = time.monotonic() + GRACE_S  # the ranks only leave their group now
            if deadline is not None and time.monotonic() > deadline:
                self._signal(signal.SIGKILL, group=True)  # never a hang: the folder keeps its last checkpoint
                deadline = time.monotonic() + GRACE_S
            time.sleep(POLL_S)

    def _take(self, events: list, result):
        """Hand the events to the window; the run's result once one of them says how it ended."""
        for e in events:
            self._on_event(e)
            if result is None and e.kind == RUN_FINISHED:
                result = ("done", e.data.get("summary") or {})
            elif result is None and e.kind == RUN_FAILED:
                result = ("failed", str(e.data.get("message", "")), str(e.data.get("details", "")))
        return result

    def _signal(self, sig: int, group: bool = False) -> None:
        """Send `sig` to torchrun (it forwards to the ranks), or to its whole process group."""
        try:
            if group and sys.platform != "win32":
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass
