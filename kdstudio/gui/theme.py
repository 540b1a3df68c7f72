"""The window's colours: a light and a dark set, chosen from the OS (or forced), applied as palette + stylesheet.

Every colour the GUI paints comes from here (`color(role)`), so a dark system palette never meets a hard-coded
white. The scheme is, in order: $KDSTUDIO_THEME (dark | light | auto), the settings entry "theme", the OS colour
scheme (Qt 6.5+ `styleHints().colorScheme()`), else the lightness of the system palette's window colour (the
offscreen platform and older desktops report no scheme). In "auto" the window follows the OS live.
"""

from __future__ import annotations

import os
from string import Template

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from ..core.resources import resources_dir

SCHEMES = ("light", "dark")
ENV = "KDSTUDIO_THEME"

# One role each; both sets name the same roles (a test checks it). Text roles keep ≥ 4.5:1 contrast on `surface`.
LIGHT = {
    "window": "#f8f9fb", "surface": "#ffffff", "surface_alt": "#f1f3f4", "border": "#e3e5e8",
    "input_border": "#dadce0", "grid": "#eceff1", "hover": "#e8eaed",
    "text": "#202124", "text_body": "#3c4043", "muted": "#5f6368", "faint": "#80868b", "dim": "#9aa0a6",
    "accent": "#1a56b8", "accent_fill": "#1a56b8", "accent_soft": "#e8f0fe", "accent_soft_text": "#174ea6",
    "accent_border": "#c6dafc", "accent_light": "#8ab4f8", "disabled_fill": "#c4d3ee", "disabled_text": "#f1f3f4",
    "doc_bg": "#eef3fd", "doc_border": "#d2e3fc",
    "error": "#d93025", "error_bg": "#fce8e6", "error_border": "#f5c2bd", "error_strong": "#a50e0e",
    "invalid_bg": "#fff6f5", "ok": "#188038", "ok_strong": "#137333", "ok_bg": "#e6f4ea", "warn": "#b06000",
    "drop_bg": "#f8f9fa", "legend_bg": "#ffffffc8", "on_accent": "#ffffff",
}
DARK = {
    "window": "#1e1f22", "surface": "#28292d", "surface_alt": "#303136", "border": "#3c3e44",
    "input_border": "#4a4d54", "grid": "#36383d", "hover": "#3a3c42",
    "text": "#e8eaed", "text_body": "#d6d8dc", "muted": "#aeb2b8", "faint": "#9aa0a6", "dim": "#868b92",
    "accent": "#8ab4f8", "accent_fill": "#2f6fd6", "accent_soft": "#253552", "accent_soft_text": "#aecbfa",
    "accent_border": "#35507e", "accent_light": "#1a56b8", "disabled_fill": "#34405a", "disabled_text": "#8a8f96",
    "doc_bg": "#222c3d", "doc_border": "#35507e",
    "error": "#f28b82", "error_bg": "#3d2523", "error_border": "#6b302b", "error_strong": "#f6aea9",
    "invalid_bg": "#3a2422", "ok": "#81c995", "ok_strong": "#81c995", "ok_bg": "#1f3a29", "warn": "#fdd663",
    "drop_bg": "#25262a", "legend_bg": "#28292dd8", "on_accent": "#ffffff",
}
COLOURS = {"light": LIGHT, "dark": DARK}

_state = {"scheme": "light", "system_palette": None, "mode": "auto", "watching": False}


class _Notifier(QObject):
    """Says when the scheme changed (after the palette and stylesheet are applied)."""

    changed = Signal(str)


notifier = _Notifier()


def scheme() -> str:
    """The scheme in use: "light" or "dark"."""
    return _state["scheme"]


def mode() -> str:
    """What was asked for: "auto" (follow the OS), "light" or "dark"."""
    return _state["mode"]


def is_dark() -> bool:
    """True when the dark colours are in use."""
    return _state["scheme"] == "dark"


def color(role: str) -> str:
    """The colour of a role in the scheme in use, as '#rrggbb' (or '#rrggbbaa')."""
    return COLOURS[_state["scheme"]][role]


def qcolor(role: str) -> QColor:
    """`color(role)` as a QColor (a '#rrggbbaa' keeps its alpha)."""
    value = color(role)
    if len(value) == 9:  # QColor reads 8 hex digits as #aarrggbb
        c = QColor(value[:7])
        c.setAlpha(int(value[7:], 16))
        return c
    return QColor(value)


def span(text: str, role: str) -> str:
    """Rich text in a role's colour (for labels and the log)."""
    return f"<span style='color:{color(role)}'>{text}</span>"


def requested(settings_value=None) -> str:
    """What the user asked for: $KDSTUDIO_THEME, else the settings value, else "auto"."""
    for value in (os.environ.get(ENV, ""), settings_value or ""):
        value = str(value).strip().lower()
        if value in SCHEMES or value == "auto":
            return value
    return "auto"


def system_scheme() -> str:
    """The OS scheme: Qt's colorScheme when it knows one, else the system palette's window lightness."""
    hints = QGuiApplication.styleHints()
    known = getattr(Qt, "ColorScheme", None)
    if known is not None and hints is not None and hasattr(hints, "colorScheme"):
        value = hints.colorScheme()
        if value == known.Dark:
            return "dark"
        if value == known.Light:
            return "light"
    palette = _state["system_palette"] or QGuiApplication.palette()
    return "dark" if palette.color(QPalette.Window).lightness() < 128 else "light"


def resolve(mode: str) -> str:
    """The scheme for a requested mode ("auto" asks the OS)."""
    return mode if mode in SCHEMES else system_scheme()


def palette(name: str) -> QPalette:
    """A full QPalette for the scheme, so Fusion's own drawing (menus, scroll bars, check boxes) matches."""
    c = {role: QColor(v[:7]) for role, v in COLOURS[name].items()}
    p = QPalette()
    roles = {QPalette.Window: "window", QPalette.WindowText: "text", QPalette.Base: "surface",
             QPalette.AlternateBase: "surface_alt", QPalette.ToolTipBase: "surface", QPalette.ToolTipText: "text",
             QPalette.PlaceholderText: "dim", QPalette.Text: "text", QPalette.Button: "surface_alt",
             QPalette.ButtonText: "text", QPalette.BrightText: "error", QPalette.Highlight: "accent_fill",
             QPalette.HighlightedText: "on_accent", QPalette.Link: "accent", QPalette.LinkVisited: "accent",
             QPalette.Light: "hover", QPalette.Midlight: "border", QPalette.Mid: "input_border",
             QPalette.Dark: "dim", QPalette.Shadow: "window"}
    for role, name_ in roles.items():
        p.setColor(role, c[name_])
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        p.setColor(QPalette.Disabled, role, c["dim"])
    return p


def stylesheet(name: str) -> str:
    """resources/style/kdstudio.qss with the scheme's colours filled in ($role placeholders)."""
    path = resources_dir() / "style" / "kdstudio.qss"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    return Template(text).safe_substitute(COLOURS[name])


def apply(app: QApplication, mode: str | None = None, settings_value=None) -> str:
    """Choose the scheme (see the module docstring), apply it to the app and every plot; returns it."""
    if _state["system_palette"] is None:
        _state["system_palette"] = QPalette(QGuiApplication.palette())  # before ours replaces it
    _state["mode"] = mode if mode is not None else requested(settings_value)
    name = resolve(_state["mode"])
    first = app.property("kdstudio_scheme") is None
    if not first and app.property("kdstudio_scheme") == name:
        return name
    _state["scheme"] = name
    app.setProperty("kdstudio_scheme", name)
    _configure_pyqtgraph()
    app.setPalette(palette(name))
    app.setStyleSheet(stylesheet(name))  # re-polishes every widget alive: only when the scheme changes
    if not first:
        for widget in app.allWidgets():
            restyle_plot(widget)
        notifier.changed.emit(name)
    _watch(app)
    return name


def _watch(app: QApplication) -> None:
    """Follow the OS scheme while the mode is "auto" (Qt 6.5+)."""
    hints = QGuiApplication.styleHints()
    if _state["watching"] or hints is None or not hasattr(hints, "colorSchemeChanged"):
        return
    _state["watching"] = True
    hints.colorSchemeChanged.connect(lambda _s: _state["mode"] == "auto" and apply(app, "auto"))


def _configure_pyqtgraph() -> None:
    """New plots get the scheme's background and axis colour."""
    import pyqtgraph as pg
    pg.setConfigOptions(background=color("surface"), foreground=color("text_body"))


def restyle_plot(widget: QWidget) -> None:
    """Give an existing pyqtgraph PlotWidget the scheme's background, axes, title and legend colours."""
    import pyqtgraph as pg
    if not isinstance(widget, pg.PlotWidget):
        return
    widget.setBackground(color("surface"))
    item = widget.getPlotItem()
    fg = color("text_body")
    for side in ("left", "bottom", "right", "top"):
        axis = item.getAxis(side)
        axis.setPen(fg)
        axis.setTextPen(fg)
        if hasattr(axis, "_pens"):
            axis._pens.clear()  # GridAxis blends its grid onto the background: blend again
    if item.titleLabel.text:
        item.titleLabel.setText(item.titleLabel.text, color=fg)
    legend = item.legend
    if legend is not None:
        legend.setBrush(pg.mkBrush(qcolor("legend_bg")))
        legend.setPen(pg.mkPen(color("input_border")))
        legend.setLabelTextColor(color("text"))
        for _sample, label in legend.items:
            label.setText(label.text)  # setLabelTextColor sets the colour; the text is rendered with it only now
    widget.update()


def _luminance(c: QColor) -> float:
    def channel(v: float) -> float:
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    return 0.2126 * channel(c.redF()) + 0.7152 * channel(c.greenF()) + 0.0722 * channel(c.blueF())


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours (1 to 21; text wants at least 4.5)."""
    la, lb = sorted((_luminance(QColor(a[:7])), _luminance(QColor(b[:7]))), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def readable(colour: str, on: str = "surface") -> str:
    """`colour` as text on a role's background: itself when it reads (≥ 4.5:1), else mixed towards the text colour
    until it does (a model's blue or purple stays recognisable on the dark surface)."""
    background, target = color(on), QColor(color("text"))
    c = QColor(colour[:7])
    for step in range(11):
        t = step / 10
        mixed = QColor.fromRgbF(c.redF() + (target.redF() - c.redF()) * t,
                                c.greenF() + (target.greenF() - c.greenF()) * t,
                                c.blueF() + (target.blueF() - c.blueF()) * t)
        if contrast(mixed.name(), background) >= 4.5:
            return mixed.name()
    return target.name()
