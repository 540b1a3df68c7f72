"""A plot with its title and legend on wrapping lines above it, and a sentence in its place until it has data.

The legend lives outside the plot area, in a word-wrapped label: it never covers a curve and is never clipped
(at 800×600 or with Run settings open it takes another line instead). pyqtgraph's own legend sat inside the view
box and did both.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QStackedLayout, QVBoxLayout, QWidget

# A short run of line-drawing characters shows the line style beside each name.
SWATCHES = {Qt.SolidLine: "━━", Qt.DashLine: "╍╍", Qt.DotLine: "┅┅", Qt.DashDotLine: "━╸"}


class LegendStrip(QLabel):
    """The plot's title followed by one swatch-and-name entry per curve; wraps between entries, never inside one."""

    def __init__(self, title: str, parent=None):
        super().__init__(parent)
        self.setObjectName("plotLegend")
        self.setTextFormat(Qt.RichText)
        self.setWordWrap(True)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Minimum)  # its width follows the plot's, not the text
        self.title = title
        self.entries: list[tuple[str, str, object]] = []
        self.entries_shown = True
        self._render()

    def set_title(self, title: str) -> None:
        """Change the bold title (e.g. the loss term an overlay compares)."""
        if title != self.title:
            self.title = title
            self._render()

    def set_entries(self, entries: list[tuple[str, str, object]]) -> None:
        """(name, colour, Qt pen style) per curve, in drawing order."""
        if entries != self.entries:
            self.entries = list(entries)
            self._render()

    def show_entries(self, on: bool) -> None:
        """Show the entries, or the title alone."""
        self.entries_shown = on
        self._render()

    def _render(self) -> None:
        parts = [f"<b>{html.escape(self.title)}</b>"] if self.title else []
        if self.entries_shown:
            for name, color, style in self.entries:
                swatch = SWATCHES.get(style, SWATCHES[Qt.SolidLine])
                parts.append(f"<span style='color:{color}'>{swatch}</span>&nbsp;"
                             f"{html.escape(name).replace(' ', '&nbsp;')}")
        self.setText("&nbsp;&nbsp; ".join(parts))


class PlotBox(QWidget):
    """A plot under its legend strip; `waiting` is said in the plot's place until a curve has a point."""

    def __init__(self, plot: QWidget, title: str, waiting: str, lead: list[QWidget] = (), parent=None):
        """`lead`: widgets before the legend on its first line (the loss plot's term chooser)."""
        super().__init__(parent)
        self.plot = plot
        self.legend = LegendStrip(title)
        self.waiting_text = waiting
        self.placeholder = QLabel(waiting)
        self.placeholder.setObjectName("plotPlaceholder")
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setMinimumHeight(plot.minimumHeight())
        body = QWidget()
        self.stack = QStackedLayout(body)
        self.stack.addWidget(plot)
        self.stack.addWidget(self.placeholder)
        self.stack.setCurrentWidget(self.placeholder)
        col = QVBoxLayout(self)
        col.setContentsMargins(4, 2, 4, 0)
        col.setSpacing(0)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        for w in lead:
            top.addWidget(w, 0, Qt.AlignTop)
        top.addWidget(self.legend, 1)
        col.addLayout(top)
        col.addWidget(body, 1)

    @property
    def waiting(self) -> bool:
        """True while the sentence stands in the plot's place."""
        return self.stack.currentWidget() is self.placeholder

    def set_has_data(self, has: bool, why: str | None = None) -> None:
        """The plot once it has a point, else a sentence (no empty axes with a made-up range): `why`, or the
        waiting one."""
        if not has:
            self.placeholder.setText(why or self.waiting_text)
        self.stack.setCurrentWidget(self.plot if has else self.placeholder)
