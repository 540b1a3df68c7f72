"""The run in progress, Qt-free: its curves, progress and ETA, position in a sweep, and what to log.

The Train page feeds event batches to `LiveRun.ingest` and draws what it returns; a sweep (seeds or a grid) starts
a fresh set of curves at each of its runs.
"""

from __future__ import annotations

from pathlib import Path

from ...core import events as ev
from ...core.store.files import RunDir, read_metrics
from ..series import Progress, RunSeries, format_duration
from ..stage_costs import PastCosts, past_costs


class LiveRun:
    """State of the active run (or sweep) built from engine events."""

    def __init__(self, cfg, out: Path, resume: bool = False):
        self.cfg, self.out, self.resume = cfg, Path(out), resume
        self.sweep_total = 0    # known from the plan in RUN_STARTED
        self.sub_index = 0
        self.series = RunSeries(self.out.name)
        self.progress = Progress({})  # replaced by the engine's plan when the run starts
        self.cache: tuple[bool, str] | None = None  # (teacher cache on?, why) once the engine said so
        self.new_series = False                     # set when a sweep moved on to its next run
        self.cache_fill: dict | None = None         # the disk teacher cache's fill while it runs (done, total, bytes)
        self.reused: dict[str, str] = {}            # stage -> the run its model was reused from (this run)
        self._past: PastCosts | None = None         # what evaluate/export took in the project's earlier runs

    # the events the log pane shows, with their style
    LOGGED = {ev.EPOCH: {"quiet": True}, ev.STAGE_STARTED: {"bold": True}, ev.LOG: {}, ev.WARNING: {"warn": True},
              ev.CHECKPOINT: {"quiet": True}, ev.RUN_FAILED: {"error": True}, ev.CACHE_FILL: {"quiet": True}}

    def ingest(self, batch: list) -> list[tuple[str, str | None, dict]]:
        """Apply a batch of events; returns log lines as (text, stage, style flags)."""
        lines: list[tuple[str, str | None, dict]] = []
        for e in batch:
            rec = {"kind": e.kind, "stage": e.stage, **e.data}
            if e.kind == ev.RUN_STARTED:
                self._run_started(e, lines)
            elif e.kind == ev.MEMBER_STARTED:
                self._member_started(e, lines)
            elif e.kind in (ev.STEP, ev.EPOCH, ev.STAGE_FINISHED):
                self.series.add(rec)
            if e.kind == ev.STEP:
                self.progress.step(e.data, e.stage, when=e.time)
            elif e.kind == ev.STAGE_STARTED:
                self.progress.stage_started(e.stage, when=e.time)
            elif e.kind == ev.STAGE_FINISHED:
                self.progress.stage_finished(e.stage)
                continue  # the stage's own log lines said what it did
            elif e.kind == ev.CACHE_FILL:
                done, total = int(e.data.get("done", 0)), int(e.data.get("total", 0))
                self.cache_fill = dict(e.data) if done < total else None
            elif e.kind == ev.LOG and "teacher_cache" in e.data:
                self.cache = (bool(e.data["teacher_cache"]), str(e.data.get("message", "")))
            elif e.kind == ev.LOG and e.data.get("reused_from"):
                self.reused[e.stage or "teacher"] = str(e.data["reused_from"])
            if e.kind in self.LOGGED:
                text = ev.describe(e)  # the same sentence log.txt and the CLI show
                if text:
                    lines.append((text, e.stage, self.LOGGED[e.kind]))
        return lines

    def _run_started(self, e, lines) -> None:
        plan = e.data.get("plan") or {}
        runs = plan.get("runs") or [{"stages": []}]
        if plan.get("sweep"):
            self.sweep_total = len(runs)
            lines.append((f"Sweep of {len(runs)} runs (points × seeds) started.", None, {"bold": True}))
            return
        self.progress = Progress.from_plan(runs[0]["stages"], past=self.past())
        if self.resume:
            self.series.extend(read_metrics(RunDir(self.out).metrics))
        lines.append((ev.describe(e) or "Run started.", None, {}))

    def _member_started(self, e, lines) -> None:
        d = e.data
        self.sub_index = int(d["index"])
        where = Path(str(d["run_dir"]))
        if self.sub_index > 1 or not self.series.is_empty():
            label = str(where.relative_to(self.out)) if where.is_relative_to(self.out) else where.name
            self.series = RunSeries(label)
            self.new_series = True
        self.progress = Progress.from_plan(d.get("stages") or [], past=self.past())
        self.reused = {}
        lines.append((f"Run {self.sub_index}/{d['total']} of the sweep: {where.name} ({where.parent.name}) on "
                      f"{d.get('device')}.", None, {"bold": True}))

    def past(self) -> PastCosts:
        """Evaluate's and export's costs in the earlier runs beside this one (read once per run)."""
        if self._past is None:
            self._past = past_costs(self.out.parent, exclude=self.out)
        return self._past

    def cache_line(self) -> str:
        """"Filling the teacher-output cache: 12,800/100,000 rows (13 %), 24.4 MiB on disk" while it fills, else ""."""
        f = self.cache_fill
        if not f:
            return ""
        done, total = int(f.get("done", 0)), max(int(f.get("total", 0)), 1)
        return (f"Filling the teacher-output cache: {done:,}/{total:,} rows ({done / total:.0%}), "
                f"{float(f.get('bytes', 0)) / 2**20:.1f} MiB on disk")

    def bar(self, paused: bool) -> tuple[int, str, str]:
        """(value 0..1000, text on the bar, detail line) for the progress bar."""
        p = self.progress
        prefix = f"run {self.sub_index}/{self.sweep_total} · " if self.sweep_total else ""
        stage_left, total_left = p.eta()
        if p.stage in p.stage_epochs:
            # before the stage's first step report: epoch 1 of the configured count, not "epoch 0/0"
            text = f"{prefix}{p.stage} · epoch {max(p.epoch, 1)}/{p.epochs or p.stage_epochs[p.stage]}"
            sweep_note = " of this run" if self.sweep_total else ""
            if stage_left is None:
                detail = "measuring the speed for an ETA…"
            elif total_left is None:  # later stages train other models: their speed is measured when they start
                detail = (f"this stage {format_duration(stage_left)} left; the whole run's ETA once the student "
                          f"trains · {p.samples_per_s:,.0f} samples/s")
            else:
                detail = (f"ETA {format_duration(total_left)}{sweep_note} (this stage {format_duration(stage_left)})"
                          f" · {p.samples_per_s:,.0f} samples/s")
        else:
            text = f"{prefix}{p.stage or 'starting'}…"
            detail = "measuring the models" if p.stage == "evaluate" else ""
            if p.stage in p.after and stage_left is not None:  # an estimate, and where it comes from
                detail = (f"{detail + ' · ' if detail else ''}about {format_duration(stage_left)} left"
                          + (f", ETA {format_duration(total_left)}" if total_left != stage_left else "")
                          + f" (estimated from {p.after_source.get(p.stage, 'earlier runs')})")
        if self.cache_fill:  # the one pass before the first distill epoch: its own progress, not the ETA's
            detail = self.cache_line()
        fraction = p.fraction()
        if self.sweep_total:
            fraction = (max(self.sub_index, 1) - 1 + fraction) / self.sweep_total
        return int(fraction * 1000), f"{text}  —  {fraction:.0%}" + (" (paused)" if paused else ""), detail
