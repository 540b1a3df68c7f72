"""The model card's charts, drawn with Pillow: line charts (loss, accuracy per epoch) and a confusion heatmap.

The core never imports Qt, and matplotlib is a large dependency for two images. Text uses Pillow's own FreeType
font (`ImageFont.load_default(size=...)`); a Pillow built without FreeType falls back to its bitmap font.
"""

from __future__ import annotations

import io
import math

from PIL import Image, ImageDraw, ImageFont, features

LOSS_SIZE, CONFUSION_SIZE = (800, 640), (720, 680)  # pixels of loss_curves.png and confusion_matrix.png
PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127)]
INK, GREY, GRID = (32, 33, 36), (95, 99, 104), (228, 230, 233)


class Canvas:
    """A white image drawn in logical pixels; with FreeType it is drawn at twice the size and scaled down, which
    smooths lines and text. A Pillow built without FreeType gets its fixed bitmap font at 1x instead."""

    def __init__(self, size: tuple[int, int]):
        self.scale = 2 if features.check("freetype2") else 1
        self.size = size
        self.img = Image.new("RGB", (size[0] * self.scale, size[1] * self.scale), "white")
        self.draw = ImageDraw.Draw(self.img)
        self._fonts: dict[int, object] = {}

    def font(self, size: int):
        """Pillow's font at `size` logical pixels (the bitmap font, one size only, without FreeType)."""
        if size not in self._fonts:
            self._fonts[size] = ImageFont.load_default(size=size * self.scale) if self.scale > 1 \
                else ImageFont.load_default()
        return self._fonts[size]

    def width(self, text: str, size: int) -> float:
        """Width of a text in logical pixels."""
        x0, _, x1, _ = self.draw.textbbox((0, 0), text, font=self.font(size))
        return (x1 - x0) / self.scale

    def text(self, xy, text: str, size: int = 13, fill=INK, anchor: str = "la") -> None:
        """Text at logical (x, y); `anchor` is left/middle/right then top/middle/bottom of the ink ("la", "mm",
        "rd"…). Placed by measuring rather than Pillow's anchors, so the bitmap font lines up the same way."""
        font, k = self.font(size), self.scale
        _, y0, x1, y1 = self.draw.textbbox((0, 0), text, font=font)
        x = xy[0] * k - {"l": 0, "m": x1 / 2, "r": x1}[anchor[0]]
        y = xy[1] * k - {"a": 0, "m": (y0 + y1) / 2, "d": y1}[anchor[1]]
        self.draw.text((x, y), text, font=font, fill=fill)

    def vtext(self, center, text: str, size: int = 13, fill=GREY) -> None:
        """Text turned 90° (reading upwards), centred on a logical point: the y-axis titles."""
        font = self.font(size)
        x0, y0, x1, y1 = self.draw.textbbox((0, 0), text, font=font)
        mask = Image.new("L", (x1 + 2, y1 + 2), 0)
        ImageDraw.Draw(mask).text((0, 0), text, font=font, fill=255)
        mask = mask.rotate(90, expand=True)
        k = self.scale
        self.img.paste(fill, (round(center[0] * k - mask.width / 2), round(center[1] * k - mask.height / 2)), mask)

    def line(self, points, fill, width: float = 1) -> None:
        """A polyline through logical points."""
        k = self.scale
        self.draw.line([(x * k, y * k) for x, y in points], fill=fill, width=max(1, round(width * k)), joint="curve")

    def rect(self, box, fill=None, outline=None) -> None:
        """A rectangle [x0, x1) × [y0, y1) in logical pixels."""
        k = self.scale
        self.draw.rectangle([box[0] * k, box[1] * k, box[2] * k - 1, box[3] * k - 1], fill=fill, outline=outline)

    def dot(self, xy, r: float, fill) -> None:
        """A filled circle: one data point."""
        k = self.scale
        self.draw.ellipse([(xy[0] - r) * k, (xy[1] - r) * k, (xy[0] + r) * k, (xy[1] + r) * k], fill=fill)

    def png(self) -> bytes:
        """The image as PNG bytes, at its logical size."""
        img = self.img if self.scale == 1 else self.img.resize(self.size, Image.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, "PNG", optimize=True)
        return buf.getvalue()


def nice_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 × 10^n) covering [lo, hi], about `most` of them."""
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / max(1, most - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step + 1e-9) * step
    ticks, v = [], first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks if ticks[-1] >= hi - step * 1e-9 else ticks + [round(v, 12)]


def _tick_label(v: float, step: float, percent: bool) -> str:
    if percent:
        digits = max(0, -math.floor(math.log10(step * 100) + 1e-9)) if step else 0
        return f"{v * 100:.{digits}f}%"
    digits = max(0, -math.floor(math.log10(step) + 1e-9)) if step else 0
    return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.2g}"


def line_chart(c: Canvas, box: tuple[int, int, int, int], series: list[tuple], title: str, ylabel: str,
               percent: bool = False) -> None:
    """Draw (label, xs, ys) series into box = (x0, y0, x1, y1): title, legend row, grid, ticks, axis titles."""
    x0, y0, x1, y1 = box
    c.text((x0 + 16, y0 + 12), title, 17)
    left, right, bottom = x0 + 78, x1 - 24, y1 - 52
    # the legend has its own right-aligned rows above the plot, so it never hides a curve
    rows: list[list[tuple[int, str, float]]] = [[]]
    for k, (label, _, _) in enumerate(series):
        need = c.width(label, 13) + 44  # sample line + gap + text + space to the next entry
        if rows[-1] and sum(e[2] for e in rows[-1]) + need > right - x0 - 16:
            rows.append([])
        rows[-1].append((k, label, need))
    ly = y0 + 44
    for i, row in enumerate(rows):
        ly = y0 + 44 + 20 * i
        lx = right - sum(e[2] for e in row) + 10
        for k, label, need in row:
            c.line([(lx, ly), (lx + 20, ly)], PALETTE[k % len(PALETTE)], 2.5)
            c.text((lx + 26, ly), label, 13, anchor="lm")
            lx += need
    top = ly + 20
    pts = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
    c.rect((left, top, right, bottom), outline=GRID)
    if not pts:
        c.text(((left + right) / 2, (top + bottom) / 2), "no data", 14, GREY, "mm")
        return
    xt = nice_ticks(min(p[0] for p in pts), max(p[0] for p in pts), 8)
    if all(float(p[0]).is_integer() for p in pts):  # epochs: whole-number ticks only
        xt = [v for v in xt if float(v).is_integer()] or xt
    lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
    pad = 0.04 * (hi - lo)
    # a little room around the curves, but no loss below 0 and no accuracy above 100 %
    low = max(lo - pad, 0.0) if lo >= 0 else lo - pad
    high = min(hi + pad, 1.0) if percent and hi <= 1 else hi + pad
    yt = nice_ticks(low, high, 6)
    xmin, xmax = min(xt[0], min(p[0] for p in pts)), max(xt[-1], max(p[0] for p in pts))
    xmax = xmax if xmax > xmin else xmin + 1
    ymin, ymax = yt[0], yt[-1]
    sx = lambda v: left + (v - xmin) / (xmax - xmin) * (right - left)  # noqa: E731
    sy = lambda v: bottom - (v - ymin) / (ymax - ymin) * (bottom - top)  # noqa: E731
    ystep = yt[1] - yt[0] if len(yt) > 1 else 0
    for v in yt:
        c.line([(left, sy(v)), (right, sy(v))], GRID)
        c.text((left - 8, sy(v)), _tick_label(v, ystep, percent), 12, GREY, "rm")
    for v in xt:
        c.line([(sx(v), bottom), (sx(v), bottom + 5)], GREY)
        c.text((sx(v), bottom + 9), f"{v:g}", 12, GREY, "ma")
    c.line([(left, top), (left, bottom), (right, bottom)], GREY)
    c.text(((left + right) / 2, bottom + 30), "epoch", 13, GREY, "ma")
    c.vtext((x0 + 20, (top + bottom) / 2), ylabel, 13)
    for k, (label, xs, ys) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        run: list[tuple[float, float]] = []
        for x, y in list(zip(xs, ys)) + [(None, None)]:  # a missing value breaks the line
            if y is not None and math.isfinite(y):
                run.append((sx(x), sy(y)))
                continue
            if len(run) > 1:
                c.line(run, color, 2.5)
            for p in run if len(xs) <= 40 or len(run) == 1 else []:
                c.dot(p, 3, color)
            run = []


def heatmap(matrix: list[list[int]], labels: list[str], title: str) -> bytes:
    """A confusion-matrix PNG: rows = true class, columns = predicted, shade = share of the row, counts shown,
    with a colour bar that says what the shades mean. CONFUSION_SIZE wide and at most that high."""
    w, h_max = CONFUSION_SIZE
    n = max(1, len(matrix))
    # long names keep their ends, which is where names of one family differ (dog_01 / dog_02)
    names = [s if len(s) <= 12 else f"{s[:5]}…{s[-6:]}" for s in map(str, labels)] or [str(i) for i in range(n)]
    shown = range(0, n, math.ceil(n / 30))  # past 30 classes only every n-th name fits
    label_w = max(Canvas((1, 1)).width(names[i], 12) for i in shown)
    left, top, bar = 56 + label_w, 56, 110  # bar: the colour bar and its labels on the right
    cell = min((w - left - bar) / n, (h_max - top - 86) / n)
    rotate = label_w > cell - 4  # column names stand upright when they do not fit under their column
    if rotate:
        cell = min(cell, (h_max - top - 60 - label_w) / n)
    side = n * cell
    below = top + side + (label_w + 14 if rotate else 26)
    c = Canvas((w, math.ceil(below + 34)))  # as high as the matrix needs: no empty band under a wide one
    c.text((16, 14), title, 17)
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        for j, v in enumerate(row):
            share = v / total
            x, y = left + j * cell, top + i * cell
            c.rect((x, y, x + cell + 0.5, y + cell + 0.5), fill=_blue(share))
            size = int(min(13, cell * 0.42))
            if v and size >= 7 and c.width(str(v), size) <= cell - 3:
                c.text((x + cell / 2, y + cell / 2), str(v), size, "white" if share > 0.3 else INK, "mm")
    c.rect((left, top, left + side, top + side), outline=GREY)
    for i in shown:
        mid = left + (i + 0.5) * cell
        c.text((left - 6, top + (i + 0.5) * cell), names[i], 12, INK, "rm")
        if rotate:
            c.vtext((mid, top + side + 8 + c.width(names[i], 12) / 2), names[i], 12, INK)
        else:
            c.text((mid, top + side + 6), names[i], 12, INK, "ma")
    c.text((left + side / 2, below), "predicted class", 13, GREY, "ma")
    c.vtext((18, top + side / 2), "true class", 13)
    bx = left + side + 24
    for y in range(int(side)):  # colour bar, one row per pixel: share of the true class's samples, 100 % on top
        c.rect((bx, top + y, bx + 16, top + y + 1), fill=_blue(1 - y / max(1, side - 1)))
    c.rect((bx, top, bx + 16, top + side), outline=GREY)
    for share in (0, 0.25, 0.5, 1):
        c.text((bx + 22, top + (1 - share) * side), f"{share:.0%}", 12, GREY, "lm")
    c.vtext((bx + 80, top + side / 2), "share of the true class", 13)
    return c.png()


def _blue(share: float) -> tuple[int, int, int]:
    """White (0 % of the row) to dark blue (100 %); the square root makes a few mistakes visible, not white."""
    ink = math.sqrt(max(0.0, min(1.0, share)))
    return tuple(int(round(255 - ink * (255 - t))) for t in (8, 48, 107))
