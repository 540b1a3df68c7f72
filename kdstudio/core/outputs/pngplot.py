"""A tiny PNG plotter for the model card: line charts and a confusion-matrix heatmap, numpy + the stdlib only.

The core must not import Qt and matplotlib is a large dependency for two images, so this draws on a numpy canvas
with a built-in 5x7 bitmap font and encodes PNG with zlib. Lower-case text is drawn in capitals.
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

_FONT_HEX = {
    "0": "0E1113151911 0E", "1": "040C040404040E", "2": "0E110102040 81F", "3": "1F020402011 10E",
    "4": "02060A121F0202", "5": "1F101E0101110E", "6": "0608101E11110E", "7": "1F010204080808",
    "8": "0E11110E11110E", "9": "0E11110F01020C", "A": "0E1111111F1111", "B": "1E11111E11111E",
    "C": "0E11101010110E", "D": "1C121111111 21C", "E": "1F10101E10101F", "F": "1F10101E101010",
    "G": "0E1110171111 0F", "H": "1111111F111111", "I": "0E04040404040E", "J": "07020202021 20C",
    "K": "11121418141211", "L": "1010101010101F", "M": "111B1515111111", "N": "11111915131111",
    "O": "0E11111111110E", "P": "1E11111E101010", "Q": "0E11111115120D", "R": "1E11111E141211",
    "S": "0F10100E01011E", "T": "1F040404040404", "U": "1111111111110E", "V": "1111111111 0A04",
    "W": "1111111515150A", "X": "11110A040A1111", "Y": "1111110A040404", "Z": "1F01020408101F",
    " ": "00000000000000", ".": "00000000000C0C", ",": "000000000C0408", "-": "0000001F000000",
    "+": "0004041F040400", ":": "000C0C000C0C00", "%": "18190204081303", "(": "02040808080402",
    ")": "08040202020408", "/": "00010204081000", "_": "0000000000001F", "=": "00001F001F0000",
    "?": "0E110102040004", "'": "0C040800000000", "|": "04040404040404", "<": "02040810080402",
    ">": "08040201020408", "[": "0E08080808080E", "]": "0E02020202020E", "*": "00150E1F0E1500",
    "#": "0A0A1F0A1F0A0A", "!": "04040404040004",
}
FONT = {c: [int(h.replace(" ", "")[i:i + 2], 16) for i in range(0, 14, 2)] for c, h in _FONT_HEX.items()}
PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127)]


class Canvas:
    """An RGB image to draw on (origin top-left)."""

    def __init__(self, width: int, height: int, background=(255, 255, 255)):
        self.img = np.empty((height, width, 3), dtype=np.uint8)
        self.img[:] = background

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.img.shape[1], self.img.shape[0]

    def rect(self, x0, y0, x1, y1, color) -> None:
        """Fill the rectangle [x0, x1) × [y0, y1)."""
        h, w = self.img.shape[:2]
        x0, x1 = max(0, int(x0)), min(w, int(x1))
        y0, y1 = max(0, int(y0)), min(h, int(y1))
        if x1 > x0 and y1 > y0:
            self.img[y0:y1, x0:x1] = color

    def line(self, x0, y0, x1, y1, color, width: int = 1) -> None:
        """A straight line, `width` pixels thick."""
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        xs, ys = np.linspace(x0, x1, n).round().astype(int), np.linspace(y0, y1, n).round().astype(int)
        h, w = self.img.shape[:2]
        for dx in range(width):
            for dy in range(width):
                xx, yy = xs + dx - width // 2, ys + dy - width // 2
                ok = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
                self.img[yy[ok], xx[ok]] = color

    def text(self, x, y, s: str, color=(0, 0, 0), scale: int = 1) -> None:
        """Draw text with its top-left corner at (x, y)."""
        for i, ch in enumerate(str(s)):
            rows = FONT.get(ch) or FONT.get(ch.upper()) or FONT["?"]
            for r, bits in enumerate(rows):
                for c in range(5):
                    if bits & (1 << (4 - c)):
                        px, py = x + (i * 6 + c) * scale, y + r * scale
                        self.rect(px, py, px + scale, py + scale, color)

    def png(self) -> bytes:
        """The image encoded as PNG."""
        h, w = self.img.shape[:2]
        raw = b"".join(b"\x00" + self.img[y].tobytes() for y in range(h))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def text_width(s: str, scale: int = 1) -> int:
    """Pixel width of a text."""
    return len(str(s)) * 6 * scale


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def line_chart(canvas: Canvas, box: tuple[int, int, int, int], series: list[tuple[str, list, list]],
               title: str = "", ylabel: str = "") -> None:
    """Draw a line chart of (label, xs, ys) series into box = (x0, y0, x1, y1) of the canvas."""
    x0, y0, x1, y1 = box
    canvas.text(x0 + 4, y0 + 2, title, (0, 0, 0), 2)
    left, top, right, bottom = x0 + 56, y0 + 32, x1 - 10, y1 - 22
    pts = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
    if not pts:
        canvas.text(left, top + 20, "no data", (120, 120, 120))
        return
    xmin, xmax = min(p[0] for p in pts), max(p[0] for p in pts)
    ymin, ymax = min(p[1] for p in pts), max(p[1] for p in pts)
    if ymax - ymin < 1e-12:
        ymin, ymax = ymin - 0.5, ymax + 0.5
    if xmax == xmin:
        xmax = xmin + 1
    pad = 0.05 * (ymax - ymin)
    ymin, ymax = ymin - pad, ymax + pad
    sx = lambda v: left + (v - xmin) / (xmax - xmin) * (right - left)  # noqa: E731
    sy = lambda v: bottom - (v - ymin) / (ymax - ymin) * (bottom - top)  # noqa: E731
    for i in range(5):
        v = ymin + (ymax - ymin) * i / 4
        canvas.line(left, sy(v), right, sy(v), (230, 230, 230))
        canvas.text(left - 6 - text_width(_fmt(v)), sy(v) - 3, _fmt(v), (80, 80, 80))
    integral = all(float(p[0]).is_integer() for p in pts)
    step = max(1, math.ceil((xmax - xmin) / 4)) if integral else (xmax - xmin) / 4
    v = xmin
    while v <= xmax + 1e-9:
        label = f"{v:.0f}" if integral else f"{v:.3g}"
        canvas.text(sx(v) - text_width(label) // 2, bottom + 6, label, (80, 80, 80))
        v += step
    canvas.line(left, top, left, bottom, (0, 0, 0))
    canvas.line(left, bottom, right, bottom, (0, 0, 0))
    canvas.text(x0 + 4, top - 10, ylabel, (80, 80, 80))
    for k, (label, xs, ys) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        good = [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
        for (xa, ya), (xb, yb) in zip(good, good[1:]):
            canvas.line(sx(xa), sy(ya), sx(xb), sy(yb), color, 2)
        if len(good) == 1:
            canvas.rect(sx(good[0][0]) - 2, sy(good[0][1]) - 2, sx(good[0][0]) + 3, sy(good[0][1]) + 3, color)
        ly = top + 4 + 12 * k
        lx = right - text_width(label) - 22
        canvas.rect(lx, ly + 2, lx + 12, ly + 5, color)
        canvas.text(lx + 16, ly, label, (0, 0, 0))


def heatmap(matrix: list[list[int]], labels: list[str], title: str = "") -> bytes:
    """A confusion-matrix PNG: rows = true class, columns = predicted, shade = share of the row, counts shown."""
    k = len(matrix)
    cell = max(6, min(40, 560 // max(k, 1)))
    names = [str(n) if text_width(str(n)) <= 60 else str(n)[:9] + "." for n in labels]
    show_names = k <= 30
    margin_l = 20 + (max(text_width(n) for n in names) if show_names and names else 0)
    margin_t = 44
    c = Canvas(margin_l + cell * k + 20, margin_t + cell * k + 30)
    c.text(8, 6, title, (0, 0, 0), 2)
    c.text(margin_l, margin_t - 14, "predicted ->", (80, 80, 80))
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        for j, v in enumerate(row):
            share = v / total
            color = tuple(int(255 - share * (255 - t)) for t in (8, 48, 107))
            x, y = margin_l + j * cell, margin_t + i * cell
            c.rect(x, y, x + cell - 1, y + cell - 1, color)
            s = str(v)
            if v and text_width(s) <= cell - 2 and cell >= 10:
                c.text(x + (cell - text_width(s)) // 2 + 1, y + (cell - 7) // 2, s,
                       (255, 255, 255) if share > 0.5 else (0, 0, 0))
        if show_names:
            c.text(margin_l - 6 - text_width(names[i]), margin_t + i * cell + (cell - 7) // 2, names[i], (0, 0, 0))
    c.text(8, margin_t + cell * k + 10, "rows: true class", (80, 80, 80))
    return c.png()
