"""Terminal rendering of engine events: the plan, one tqdm bar per training stage, messages above it.

Messages are the events' one `describe()` sentence, the same that log.txt and the window's log show.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from .core import events as ev
from .core.outputs.gain import gain_sentence
from .core.store.summary import ratio_said


class ProgressPrinter:
    """An engine listener that draws progress bars (stage, epoch, ETA, samples/s) and prints messages."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.bar: tqdm | None = None
        self.stage: str | None = None
        self.is_sweep = False
        self.member = ""        # "3/6 " while a sweep runs its third point × seed

    def __call__(self, e: ev.Event) -> None:
        d = e.data
        if e.kind == ev.STEP:
            total = d["epochs"] * d["steps"]
            if self.bar is None or self.stage != e.stage:
                self._close_bar()
                self.stage = e.stage
                self.bar = tqdm(total=total, desc=f"{self.member}{e.stage:>8}", unit="step", file=self.stream,
                                dynamic_ncols=True, leave=True)
            self.bar.total = total
            self.bar.update(d["global_step"] - self.bar.n)
            self.bar.set_postfix_str(f"epoch {d['epoch']}/{d['epochs']} loss {d['terms'].get('total', 0.0):.4f} "
                                     f"{d['samples_per_s']:,.0f} samples/s", refresh=False)
        elif e.kind == ev.EPOCH:
            if self.bar is not None:
                val = d["val_acc"]
                self.bar.set_postfix_str(f"epoch {d['epoch']}/{d['epochs']} "
                                         + (f"val acc {val:.2%}" if val is not None else ""), refresh=True)
        elif e.kind in (ev.STAGE_STARTED, ev.STAGE_FINISHED, ev.MEMBER_STARTED):
            self._close_bar()
            if e.kind == ev.MEMBER_STARTED:
                self.member = f"{d['index']}/{d['total']} "
            if e.kind != ev.STAGE_FINISHED:
                self._write(ev.describe(e) or "")
        elif e.kind == ev.RUN_STARTED:
            self.is_sweep = bool(d["plan"].get("sweep"))
            self._write(f"Plan: {d['plan']['description']}.")
        elif e.kind in (ev.LOG, ev.WARNING):
            self._write(ev.describe(e) or "")

    def _write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream)

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        """Close any open bar."""
        self._close_bar()

    def print_summary(self, summary: dict, out) -> None:
        """The headline numbers of a finished run, on stdout."""
        status = summary.get("status")
        if status != "completed":
            print(f"Run {status}. Folder: {out}" + (f"  (continue with: kdstudio run --resume --out {out})"
                                                   if status == "stopped" else ""))
            return
        t, s, b = summary["teacher"], summary["student"], summary.get("baseline")
        lines = [f"Run completed on {summary['device']}. Folder: {out}",
                 f"  teacher   {t['params']:>10,} params   test accuracy {t['accuracy']:.2%}",
                 f"  student   {s['params']:>10,} params   test accuracy {s['accuracy']:.2%}"
                 + (f"   ({said})" if (said := ratio_said(summary['compression']['params_ratio'],
                                                      'fewer parameters', 'more parameters')) else "")]
        if b:
            lines.append(f"  baseline  {b['params']:>10,} params   test accuracy {b['accuracy']:.2%}"
                         "   (same student from scratch)")
            lines.append(f"  KD gain   {gain_sentence(summary.get('kd_gain_stats'), summary.get('kd_gain'))}")
        for x in summary.get("exports", []):
            lines.append(f"  export    {x['format']:<12} {x['bytes']:>10,} bytes   max |diff| {x['max_abs_diff']:.1e}"
                         f"   {x['path']}")
        print("\n".join(lines))
