"""Keeps None, True and False alive under a PySide6 build that drops references to them.

PySide6 6.12.0 as installed here (CPython 3.11) returns None from every void C++ method, and True from
`Signal.emit`, without taking a reference: each call lowers the singleton's reference count by one. A window
that updates plots 20 times a second makes tens of thousands of such calls a minute, and CPython aborts with
"Fatal Python error: none_dealloc" once the count reaches zero (observed after ~7 minutes of a demo run).

`probe()` measures whether this build has the bug; `top_up()` raises the singletons' counts far above zero (they
are never freed anyway, so a higher count changes nothing else). The app calls it at start and on a timer.
CPython 3.12+ makes these objects immortal, so there (and when the bug is absent) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys

LOW = 1 << 20    # top up when a count falls below ~1M ...
HIGH = 1 << 22   # ... to ~4M: minutes of headroom at any plausible call rate
_SINGLETONS = (None, True, False)
_state = {"checked": False, "active": False, "added": 0}


def _mortal() -> bool:
    return sys.implementation.name == "cpython" and sys.version_info < (3, 12)


def probe() -> bool:
    """True when calling a void Qt method / emitting a signal loses a reference (the bug is present)."""
    if _state["checked"]:
        return _state["active"]
    _state["checked"] = True
    if not _mortal():
        return False
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    obj = _Probe()
    before = (sys.getrefcount(None), sys.getrefcount(True))
    for _ in range(64):
        obj.setObjectName("probe")
        obj.ping.emit()
    lost = (before[0] - sys.getrefcount(None), before[1] - sys.getrefcount(True))
    _state["active"] = max(lost) >= 32
    return _state["active"]


def top_up() -> int:
    """Raise the reference counts of None/True/False that fell below LOW; returns how many were added."""
    if not probe():
        return 0
    added = 0
    for obj in _SINGLETONS:
        n = sys.getrefcount(obj)
        if n < LOW:
            ctypes.c_ssize_t.from_address(id(obj)).value += HIGH - n  # ob_refcnt is the first field
            added += HIGH - n
    _state["added"] += added
    return added


def status() -> dict:
    """Whether the guard is active and how many references it has added so far."""
    return {"active": _state["active"], "added": _state["added"]}
