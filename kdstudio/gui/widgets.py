"""Small shared widgets: banners, stat cards, status dots, elided labels, drop zones, number formatting."""

from __future__ import annotations

import html
import math
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from . import theme

STATUS_COLORS = {"completed": "#188038", "running": "#1a56b8", "stopped": "#f9ab00", "failed": "#d93025",
                 "incomplete": "#9aa0a6", "damaged": "#d93025", "paused": "#f9ab00"}


def dot_icon(color: str, size: int = 12) -> QIcon:
    """A filled circle icon (run status, pages with problems)."""
    pm = QPixmap(size, size)
    pm.fill(Qt.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.Antialiasing)
    p.setBrush(QColor(color))
    p.setPen(Qt.NoPen)
    p.drawEllipse(1, 1, size - 2, size - 2)
    p.end()
    return QIcon(pm)


def fmt_int(n) -> str:
    """12345 → '12,345'; None → '–'."""
    return "–" if n is None else f"{int(n):,}"


def fmt_pct(x, digits: int = 1) -> str:
    """0.9777 → '97.8%'."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x * 100:.{digits}f}%"


def fmt_pts(x) -> str:
    """Accuracy difference in percentage points with a sign: -0.008 → '−0.8 pts'."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    v = x * 100
    return f"{'+' if v >= 0 else '−'}{abs(v):.1f} pts"


def fmt_bytes(n) -> str:
    """Human-readable size: 20552 → '20.1 KiB'."""
    if n is None:
        return "–"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_ratio(x) -> str:
    """3.14159 → '3.1×'."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.1f}×" if x < 100 else f"{x:,.0f}×"


def ratio_words(x, more: str, less: str) -> tuple[str, str]:
    """A teacher/student ratio said the right way round, as (number, word): 10.5 → ('10.5×', more); 0.8, a
    student bigger or slower than its teacher → ('1.25×', less); no ratio → ('–', '')."""
    if not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
        return "–", ""
    if x >= 0.995:  # what rounds to 1.0× reads as `more`, not as "1.00× larger"
        return fmt_ratio(x), more
    r = 1 / x
    return (f"{r:.2f}×" if r < 2 else fmt_ratio(r)), less


def fmt_ratio_said(x, more: str, less: str) -> str:
    """A table cell under a `more` heading ("Smaller"): '10.5×', or '1.25× larger' when it is the other way round."""
    number, word = ratio_words(x, more, less)
    return f"{number} {word}" if word == less else number


class Banner(QFrame):
    """A coloured one-line message with an optional action button; hidden when empty."""

    action = Signal()

    def __init__(self, kind: str = "error", parent=None):
        super().__init__(parent)
        self.setObjectName(f"banner_{kind}")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse | Qt.LinksAccessibleByMouse)
        self.button = QPushButton()
        self.button.hide()
        self.button.clicked.connect(self.action)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 10, 6)
        row.addWidget(self.label, 1)
        row.addWidget(self.button)
        self.hide()

    def show_message(self, text: str, button: str | None = None) -> None:
        """Show `text` (and a button labelled `button`)."""
        self.label.setText(text)
        self.button.setText(button or "")
        self.button.setVisible(bool(button))
        self.show()

    def clear(self) -> None:
        """Hide the banner."""
        self.label.clear()
        self.hide()

    def text(self) -> str:
        """The message shown ('' when hidden)."""
        return "" if self.isHidden() else self.label.text()


class StatCard(QFrame):
    """A small card: caption, big value, and a detail line."""

    def __init__(self, caption: str, parent=None):
        super().__init__(parent)
        self.setObjectName("card")
        self.caption = QLabel(caption)
        self.caption.setObjectName("cardCaption")
        self.value = QLabel("–")
        self.value.setObjectName("cardValue")
        self.detail = QLabel("")
        self.detail.setObjectName("cardDetail")
        self.detail.setWordWrap(True)
        col = QVBoxLayout(self)
        col.setContentsMargins(12, 8, 12, 8)
        col.setSpacing(2)
        col.addWidget(self.caption)
        col.addWidget(self.value)
        col.addWidget(self.detail)

    def set(self, value: str, detail: str = "") -> None:
        """Update the value and the detail line."""
        self.value.setText(value)
        self.detail.setText(detail)


class CardGrid(QWidget):
    """Cards side by side while they fit, else two (or one) to a row: a narrow page never cuts a card off, and
    the grid's minimum width is that of one column, so it never holds a page wider than the window."""

    def __init__(self, *cards: QWidget, room: int = 170):
        super().__init__()
        self.cards, self.room, self.columns = cards, room, 0
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self._place(len(cards))

    def _need(self, columns: int) -> int:
        widest = max([self.room] + [c.minimumSizeHint().width() for c in self.cards])
        return columns * widest + (columns - 1) * max(self.grid.horizontalSpacing(), 0)

    def _place(self, columns: int) -> None:
        if columns == self.columns:
            return
        self.columns = columns
        for c in self.cards:
            self.grid.removeWidget(c)
        for i in range(len(self.cards)):
            self.grid.setColumnStretch(i, 1 if i < columns else 0)
        for i, c in enumerate(self.cards):
            self.grid.addWidget(c, i // columns, i % columns)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override: one card to a row is the narrowest
        return QSize(self._need(1), super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        n = len(self.cards)
        self._place(next((k for k in (n, 2, 1) if k <= n and self._need(k) <= event.size().width()), 1))


def card_row(*cards: QWidget) -> QWidget:
    """Cards side by side."""
    w = QWidget()
    row = QHBoxLayout(w)
    row.setContentsMargins(0, 0, 0, 0)
    for c in cards:
        row.addWidget(c, 1)
    return w


class ElidedLabel(QLabel):
    """One line shortened in the middle ("…") to the width it gets, so a long project name or path never widens
    the window; the whole text is the tooltip (`link`: shown as a link)."""

    def __init__(self, link: bool = False):
        super().__init__()
        self._full, self._link = "", link
        self.setMinimumWidth(40)  # not the shown text's width, or the label could never shorten it further

    def set_full_text(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._fit()  # setText: the layout asks sizeHint again

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override: the width the whole text wants
        return QSize(self.fontMetrics().horizontalAdvance(self._full) + 8, super().sizeHint().height())

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.ElideMiddle, max(self.width() - 8, 0))
        self.setText(f"<a href='#'>{html.escape(shown)}</a>" if self._link and shown else shown)


class FileDrop(QObject):
    """Makes a widget (and the children that take no drops themselves) accept dropped files: `dropped` gets the
    local paths. Every file drag is accepted, so the receiver can explain a wrong file instead of a no-drop cursor."""

    dropped = Signal(list)

    def __init__(self, target: QWidget):
        super().__init__(target)
        target.setAcceptDrops(True)
        target.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        if kind in (QEvent.DragEnter, QEvent.DragMove):
            if event.mimeData().hasUrls():
                event.acceptProposedAction()
                return True
        elif kind == QEvent.Drop and event.mimeData().hasUrls():
            paths = [u.toLocalFile() or u.toString() for u in event.mimeData().urls()]
            event.acceptProposedAction()
            self.dropped.emit(paths)
            return True
        return False


class DropZone(QFrame):
    """A dashed box that invites a drop, with one line under it that says what happened."""

    def __init__(self, hint: str, parent=None):
        super().__init__(parent)
        self.setObjectName("dropZone")
        self._restyle()
        theme.notifier.changed.connect(self._restyle)
        self.hint = QLabel(hint)
        self.hint.setObjectName("help")
        self.hint.setWordWrap(True)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.message.hide()
        col = QVBoxLayout(self)
        col.setContentsMargins(10, 6, 10, 6)
        col.setSpacing(2)
        col.addWidget(self.hint)
        col.addWidget(self.message)

    def _restyle(self, _scheme: str = "") -> None:
        self.setStyleSheet(f"QFrame#dropZone {{ border: 1px dashed {theme.color('dim')}; border-radius: 6px; "
                           f"background: {theme.color('drop_bg')}; }}"
                           "QFrame#dropZone QLabel { border: none; background: transparent; }")

    def say(self, text: str, problem: bool = False) -> None:
        """Show one line: a problem in red, otherwise in the normal text colour."""
        self.message.setObjectName("problem" if problem else "")
        self.message.setStyleSheet(f"color: {theme.color('error' if problem else 'ok')};")
        self.message.setText(text)
        self.message.setVisible(bool(text))


def file_suffix(path: str) -> str:
    """The lower-case suffix of a path ('' for none)."""
    return Path(path).suffix.lower()
