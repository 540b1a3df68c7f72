"""One palette for every curve the window draws (Qt-free): a known loss term or stage has its own colour in every
run, an unknown one (a new method's term) gets a colour no other curve on its plot has, and runs overlaid on one
plot get one colour each.

Every colour has a relative luminance between 0.146 and 0.30, so it keeps a 3:1 contrast (WCAG's for graphics)
against both the white plot background and a dark one (#202124).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

# Methods never share a plot with another method of their kind (one logit method, at most one feature method per
# run), so a role's colour is shared across them: the distillation term is orange whatever the method.
TERM_COLORS = {
    "total": "#1a73e8",        # blue: what is minimised
    "ce": "#1e8e3e",           # green: the student's cross-entropy on the labels
    "teacher_ce": "#80868b",   # grey: the teacher's CE, a reference
    # a logit method's first distillation term ...
    "kd": "#e8710a", "soft_mse": "#e8710a", "logit_mse": "#e8710a", "tckd": "#e8710a", "dist_inter": "#e8710a",
    # ... and its second
    "nckd": "#d01884", "dist_intra": "#d01884",
    # a feature method's first term and its second
    "fitnet": "#0f9d9a", "at": "#0f9d9a", "sp": "#0f9d9a", "pkt": "#0f9d9a", "rkd_distance": "#0f9d9a",
    "rkd_angle": "#b8860b",
}
STAGE_COLORS = {"teacher": "#a142f4", "distill": "#1a73e8", "baseline": "#b8602d", "finetune": "#5c6bc0"}
# The models of a run, as the Evaluate page's table and charts colour them: their stage's colour.
MODEL_COLORS = {"teacher": STAGE_COLORS["teacher"], "student": STAGE_COLORS["distill"],
                "baseline": STAGE_COLORS["baseline"]}
# Unknown terms take the first of these their plot has not used, starting at a place fixed by their name.
FALLBACK = ["#d93025", "#e52592", "#689f38", "#8d6e63", "#5c6bc0", "#8e8e00", "#3f8fd2", "#ab47bc", "#c0662f",
            "#009688"]
# One colour per overlaid run, in the order the runs are given; past ten, the colours repeat with dashes.
RUN_COLORS = ["#1a73e8", "#e8710a", "#1e8e3e", "#d93025", "#a142f4", "#0f9d9a", "#e52592", "#80868b", "#b8860b",
              "#5c6bc0"]
DARK_BACKGROUND = "#202124"


def preferred(key: str) -> str | None:
    """The fixed colour of a term ("kd") or of a stage's own loss ("stage:baseline"); None for an unknown one."""
    if key.startswith("stage:"):
        return STAGE_COLORS.get(key[6:])
    return TERM_COLORS.get(key)


def plot_colors(keys: Iterable[str]) -> dict[str, str]:
    """A colour for every curve key of one plot, no two alike while the palette lasts: known keys get their own
    colour (unless an earlier key on the plot has it), the rest the first free fallback colour from a start
    fixed by the name, so the same set of curves always looks the same."""
    keys = list(dict.fromkeys(keys))
    out: dict[str, str] = {}
    used: set[str] = set()
    for k in keys:
        c = preferred(k)
        if c is not None and c not in used:
            out[k] = c
            used.add(c)
    pool = FALLBACK + [c for c in RUN_COLORS + list(STAGE_COLORS.values()) if c not in FALLBACK]
    pool = list(dict.fromkeys(pool))
    for k in keys:
        if k in out:
            continue
        start = zlib.crc32(k.encode("utf-8")) % len(FALLBACK)
        free = [pool[(start + i) % len(pool)] for i in range(len(pool))]
        colour = next((c for c in free if c not in used), free[0])  # past the palette: a repeat, never a crash
        out[k] = colour
        used.add(colour)
    return out


def run_color(index: int) -> tuple[str, bool]:
    """(colour, dashed) of the index-th run of an overlay: ten colours, then the same ten dashed."""
    return RUN_COLORS[index % len(RUN_COLORS)], (index // len(RUN_COLORS)) % 2 == 1


def luminance(colour: str) -> float:
    """WCAG relative luminance of '#rrggbb'."""
    h = colour.lstrip("#")
    channels = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two '#rrggbb' colours (1 … 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)
