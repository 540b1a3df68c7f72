"""The window's geometry, dock layout, splitter sizes and project-list state, kept in the settings file between
sessions (Qt's saveGeometry/saveState bytes as base64 text)."""

from __future__ import annotations

import base64

from PySide6.QtCore import QByteArray


def _b64(data: QByteArray) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")


def _unb64(text) -> QByteArray | None:
    try:
        return QByteArray(base64.b64decode(text)) if text else None
    except (ValueError, TypeError):
        return None


def restore(window) -> None:
    """Geometry, dock layout and splitter sizes from the settings file."""
    geo = _unb64(window.settings.get("geometry"))
    if geo is not None:
        window.restoreGeometry(geo)
    state = _unb64(window.settings.get("window_state"))
    if state is not None:
        window.restoreState(state)
    sizes = window.settings.get("split")
    if isinstance(sizes, list) and len(sizes) == 2 and int(sizes[0]) > 0:
        window.split.setSizes([int(s) for s in sizes])
    if window.settings.get("project_list") is False:
        window.set_project_list_visible(False)


def save(window) -> None:
    """Write geometry and the rest of the window state to the settings file."""
    window.settings.set("geometry", _b64(window.saveGeometry()))
    window.settings.set("window_state", _b64(window.saveState()))
    if not window.panel.isHidden():
        window.settings.set("split", window.split.sizes())
    window.settings.set("project_list", not window.panel.isHidden() or window._auto_folded)
    window.settings.save()
