"""What the live plots draw: one Spec per curve, for one run (every loss term) or an overlay of several runs (one
loss term that every run reports, so runs of different methods are compared like with like).

Colours come from palette.py: a term keeps its colour in every run, no two curves of a plot share one.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPen

from .palette import plot_colors, run_color
from .series import RunSeries

STAGE_NAMES = {"teacher": "teacher (training)", "distill": "student (KD)", "baseline": "baseline (from scratch)"}
STAGE_LOSS_NAMES = {"teacher": "teacher training", "baseline": "baseline"}
TERM_NAMES = {"total": "total", "kd": "KD term", "ce": "student CE", "teacher_ce": "teacher CE (reference)"}


def term_name(term: str) -> str:
    """A distillation term as the legend says it."""
    return TERM_NAMES.get(term, term)


def pen(color: str, style=Qt.SolidLine, width: float = 2.0, alpha: int = 255) -> QPen:
    """A cosmetic pen of this colour, line style, width and opacity."""
    c = QColor(color)
    c.setAlpha(alpha)
    p = pg.mkPen(c, width=width)
    p.setStyle(style)
    return p


@dataclass
class Spec:
    """One curve to draw: where, what data, how it looks."""

    key: tuple
    plot: str          # "loss" | "acc" | "lr"
    curve: object      # series.Curve
    pen: QPen
    name: str | None   # legend entry (None = no entry)
    smooth: bool = False
    symbol: str | None = None
    scale: float = 1.0


def _loss_key(stage: str, term: str) -> str:
    """The palette key of a loss curve: the term for distillation, the stage for a plain CE stage."""
    if stage == "distill":
        return term
    return f"stage:{stage}" if term in ("ce", "total") else f"{stage}:{term}"


def single_specs(s: RunSeries, weight: float, epoch_means: bool) -> list[Spec]:
    """Every curve of one run: each loss term (smoothed over its faint raw values), validation accuracy, lr."""
    out: list[Spec] = []
    smooth = weight > 0
    keys = [k for k in s.loss_keys() if not (k[0] != "distill" and k[1] == "total" and (k[0], "ce") in s.step)]
    colors = plot_colors(_loss_key(*k) for k in keys)  # plain CE stages: total is ce, drawn once
    for stage, term in keys:
        color = colors[_loss_key(stage, term)]
        if stage == "distill":
            style = Qt.DashLine if term == "teacher_ce" else Qt.SolidLine
            name = term_name(term)
        else:
            style = Qt.DashDotLine if stage == "teacher" else Qt.DotLine
            name = f"{STAGE_LOSS_NAMES.get(stage, stage)} {'CE' if term == 'ce' else term}"
        curve = s.step[(stage, term)]
        if smooth:
            out.append(Spec(("loss", stage, term, "raw"), "loss", curve, pen(color, style, 1, 50), None))
        out.append(Spec(("loss", stage, term, "step"), "loss", curve, pen(color, style), name, smooth))
        if epoch_means and (stage, term) in s.epoch:
            out.append(Spec(("loss", stage, term, "epoch"), "loss", s.epoch[(stage, term)], pen(color), None,
                            symbol="o"))
    acc_colors = plot_colors(f"stage:{stage}" for stage in s.val_acc)
    for stage, curve in s.val_acc.items():
        style = Qt.DashDotLine if stage == "teacher" else Qt.SolidLine
        out.append(Spec(("acc", stage, "val_acc", "line"), "acc", curve, pen(acc_colors[f"stage:{stage}"], style),
                        STAGE_NAMES.get(stage, stage), scale=100.0))
    lr_colors = plot_colors(f"stage:{stage}" for stage in s.lr)
    for stage, curve in s.lr.items():
        # distill and baseline share a schedule: the baseline dashed on top keeps both visible
        style = {"teacher": Qt.DashDotLine, "baseline": Qt.DashLine}.get(stage, Qt.SolidLine)
        out.append(Spec(("lr", stage, "lr", "line"), "lr", curve, pen(lr_colors[f"stage:{stage}"], style), stage))
    return out


def distill_terms(s: RunSeries) -> list[str]:
    """The distillation loss terms a run reports, in the order they first appeared."""
    return [t for stage, t in s.loss_keys() if stage == "distill"]


def comparable_terms(series: list[RunSeries]) -> list[str]:
    """The distillation terms every run that distilled reports (what an overlay can compare), in the first such
    run's order; a run stopped before distilling has no loss curve to compare and is left out."""
    distilled = [distill_terms(s) for s in series if distill_terms(s)]
    if not distilled:
        return []
    common = set(distilled[0]).intersection(*distilled[1:])
    return [t for t in distilled[0] if t in common]


def default_term(series: list[RunSeries]) -> str | None:
    """The term an overlay shows first: "total" when every run reports the same terms (one method), else the
    student's cross-entropy on the labels, the one loss that means the same under every method."""
    terms = comparable_terms(series)
    if not terms:
        return None
    distilled = [set(distill_terms(s)) for s in series if distill_terms(s)]
    same_method = all(d == distilled[0] for d in distilled)
    for want in (("total", "ce") if same_method else ("ce", "total")):
        if want in terms:
            return want
    return terms[0]


def overlay_specs(series: list[RunSeries], labels: list[str], term: str | None, weight: float) -> list[Spec]:
    """Several runs, one colour each: the chosen loss term, validation accuracy (student, baseline), lr."""
    out: list[Spec] = []
    for i, (s, label) in enumerate(zip(series, labels)):
        color, repeat = run_color(i)
        solid, dashed = (Qt.DashDotLine, Qt.DotLine) if repeat else (Qt.SolidLine, Qt.DashLine)
        curve = s.step.get(("distill", term)) if term else None
        if curve is not None:
            out.append(Spec(("loss", i, term, "step"), "loss", curve, pen(color, solid), label, weight > 0))
        for stage, style in (("distill", solid), ("baseline", dashed)):
            if stage in s.val_acc:  # one legend entry per run: the title says which line is which
                named = stage == "distill" or "distill" not in s.val_acc
                out.append(Spec(("acc", i, stage, "line"), "acc", s.val_acc[stage], pen(color, style),
                                label if named else None, scale=100.0))
        if "distill" in s.lr:
            out.append(Spec(("lr", i, "lr", "line"), "lr", s.lr["distill"], pen(color, solid), label))
    return out
