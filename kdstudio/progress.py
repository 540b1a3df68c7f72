"""Terminal rendering of engine events: one tqdm bar per training stage, messages above it."""

from __future__ import annotations

import sys

from tqdm import tqdm

from .core import events as ev


class ProgressPrinter:
    """An engine listener that draws progress bars (stage, epoch, ETA, samples/s) and prints messages."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.bar: tqdm | None = None
        self.stage: str | None = None

    def __call__(self, e: ev.Event) -> None:
        if e.kind == ev.STEP:
            d = e.data
            total = d["epochs"] * d["steps"]
            if self.bar is None or self.stage != e.stage:
                self._close_bar()
                self.stage = e.stage
                self.bar = tqdm(total=total, desc=f"{e.stage:>8}", unit="step", file=self.stream,
                                dynamic_ncols=True, leave=True)
            self.bar.total = total
            self.bar.update(d["global_step"] - self.bar.n)
            self.bar.set_postfix_str(f"epoch {d['epoch']}/{d['epochs']} loss {d['total']:.4f} "
                                     f"{d['samples_per_s']:,.0f} samples/s", refresh=False)
        elif e.kind == ev.EPOCH:
            if self.bar is not None:
                self.bar.set_postfix_str(f"epoch {e.data['epoch']}/{e.data['epochs']} "
                                         f"val acc {e.data['val_acc']:.2%}", refresh=True)
        elif e.kind == ev.STAGE_STARTED:
            self._close_bar()
            self._write(f"── {e.stage} ──")
        elif e.kind in (ev.LOG, ev.WARNING):
            prefix = "warning: " if e.kind == ev.WARNING else ""
            self._write(f"{prefix}{e.data.get('message', '')}")
        elif e.kind == ev.STAGE_FINISHED:
            self._close_bar()

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
                 f"   ({summary['compression']['params_ratio']:.1f}x fewer parameters)"]
        if b:
            lines.append(f"  baseline  {b['params']:>10,} params   test accuracy {b['accuracy']:.2%}"
                         f"   (same student from scratch; KD gain {summary['kd_gain'] * 100:+.2f} points)")
        for x in summary.get("exports", []):
            lines.append(f"  export    {x['format']:<12} {x['bytes']:>10,} bytes   max |diff| {x['max_abs_diff']:.1e}"
                         f"   {x['path']}")
        print("\n".join(lines))
