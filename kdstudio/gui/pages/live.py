"""The run in progress, Qt-free: its curves, progress and ETA, position in a sweep, and what to log.

The Train page feeds event batches to `LiveRun.ingest` and draws what it returns; a sweep (seeds or a grid) starts
a fresh set of curves at each of its runs.
"""

from __future__ import annotations

from pathlib import Path

from ...core import events as ev
from ...core.store.files import read_metrics
from ..series import Progress, RunSeries, format_duration


class LiveRun:
    """State of the active run (or sweep) built from engine events."""

    def __init__(self, cfg, out: Path, resume: bool = False):
        from ...core.pipeline import sweep
        self.cfg, self.out = cfg, Path(out)
        self.sweep_total = len(sweep.expand(cfg)) if sweep.is_sweep(cfg) else 0
        self.sub_index = 0
        self.series = RunSeries(self.out.name)
        if resume and not self.sweep_total:
            self.series.extend(read_metrics(self.out / "metrics.jsonl"))
        self.progress = Progress.for_config(cfg)
        self.cache: tuple[bool, str] | None = None  # (teacher cache on?, why) once the engine said so
        self.new_series = False                     # set when a sweep moved on to its next run

    def ingest(self, batch: list) -> list[tuple[str, str | None, dict]]:
        """Apply a batch of events; returns log lines as (text, stage, style flags)."""
        lines: list[tuple[str, str | None, dict]] = []
        for e in batch:
            rec = {"kind": e.kind, "stage": e.stage, **e.data}
            if e.kind == ev.RUN_STARTED:
                self._run_started(e, lines)
            elif e.kind in (ev.STEP, ev.EPOCH, ev.STAGE_FINISHED):
                self.series.add(rec)
            if e.kind == ev.STEP:
                self.progress.step(e.data, e.stage, when=e.time)
            elif e.kind == ev.EPOCH:
                lines.append((ev.epoch_line(e.data), e.stage, {"quiet": True}))
            elif e.kind == ev.STAGE_STARTED:
                self.progress.stage_started(e.stage)
                lines.append((f"── {e.stage} ──", e.stage, {"bold": True}))
            elif e.kind == ev.STAGE_FINISHED:
                self.progress.stage_finished(e.stage)
            elif e.kind in (ev.LOG, ev.WARNING):
                lines.append((str(e.data.get("message", "")), e.stage, {"warn": e.kind == ev.WARNING}))
                if "teacher_cache" in e.data:
                    self.cache = (bool(e.data["teacher_cache"]), str(e.data.get("message", "")))
            elif e.kind == ev.CHECKPOINT and e.data.get("complete"):
                lines.append((f"checkpoint: {Path(str(e.data.get('path'))).name}", e.stage, {"quiet": True}))
            elif e.kind == ev.RUN_FAILED:
                lines.append((str(e.data.get("message")), e.stage, {"error": True}))
        return lines

    def _run_started(self, e, lines) -> None:
        self.sub_index += 1
        where = Path(str(e.data.get("run_dir", self.out)))
        if self.sweep_total:
            if self.sub_index > 1 or not self.series.is_empty():
                label = str(where.relative_to(self.out)) if where.is_relative_to(self.out) else where.name
                self.series = RunSeries(label)
                self.progress = Progress.for_config(self.cfg)
                self.new_series = True
            lines.append((f"Run {self.sub_index}/{self.sweep_total} of the sweep: {where.name} "
                          f"({where.parent.name}) on {e.data.get('device')}.", None, {"bold": True}))
        else:
            lines.append((f"Run started on {e.data.get('device')}.", None, {}))

    def bar(self, paused: bool) -> tuple[int, str, str]:
        """(value 0..1000, text on the bar, detail line) for the progress bar."""
        p = self.progress
        prefix = f"run {self.sub_index}/{self.sweep_total} · " if self.sweep_total else ""
        stage_left, total_left = p.eta()
        if p.stage in p.stage_epochs:
            # before the stage's first step report: epoch 1 of the configured count, not "epoch 0/0"
            text = f"{prefix}{p.stage} · epoch {max(p.epoch, 1)}/{p.epochs or p.stage_epochs[p.stage]}"
            sweep_note = " of this run" if self.sweep_total else ""
            detail = ("measuring the speed for an ETA…" if total_left is None else
                      f"ETA {format_duration(total_left)}{sweep_note} (this stage {format_duration(stage_left)}) · "
                      f"{p.samples_per_s:,.0f} samples/s")
        else:
            text = f"{prefix}{p.stage or 'starting'}…"
            detail = "measuring the models" if p.stage == "evaluate" else ""
        fraction = p.fraction()
        if self.sweep_total:
            fraction = (max(self.sub_index, 1) - 1 + fraction) / self.sweep_total
        return int(fraction * 1000), f"{text}  —  {fraction:.0%}" + (" (paused)" if paused else ""), detail
