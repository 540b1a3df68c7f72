"""Python's cyclic garbage collector, run in the GUI thread only.

Left automatic, the collector runs in whichever thread allocates past its threshold: the background import of
torch, a parameter count, the training run. Collecting a PySide object there deletes its Qt object from that
thread; Qt holds a lock while it does, and the object's wrapper then waits for the GIL. With the GUI thread holding
the GIL and waiting for that same lock (connecting a signal, say), both hung for good: seen while the window built a
page during the catalog's `import torch` (py-spy: gc_collect_main -> QObject::~QObject -> GilState::acquire in the
pool thread, QObject::connectImpl -> QBasicMutex::lockInternal in the GUI thread). So the automatic collector is
off while the app runs, and a GUI-thread timer collects by the same thresholds.

A full collection walks every object alive: with PyTorch, pyqtgraph and every page loaded, ~240k of them, 290-410 ms
in the GUI thread (measured on a busy 2-core machine). InfoHub freezes torch's objects once it has loaded; `freeze`
does the same for the pages' once the idle chain has built them (prebuild.py, app.main): objects that live as long
as the app leave the collector's sight, and a full collection walks only what came later.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 100
_state: dict = {"timer": None}


def check() -> int:
    """Collect the oldest generation whose count has passed gc's threshold, as the automatic collector would;
    returns how many objects were unreachable (0 when nothing was due)."""
    t0, t1, t2 = gc.get_threshold()
    c0, c1, c2 = gc.get_count()
    if c0 <= t0:
        return 0
    return gc.collect(2 if c2 > t2 else 1 if c1 > t1 else 0)


def freeze() -> int:
    """Leave the objects alive now out of every later collection (gc.freeze); returns how many are frozen."""
    gc.freeze()
    return gc.get_freeze_count()


def install(owner: QObject) -> None:
    """Turn the automatic collector off and collect from a timer in the thread of `owner` (the QApplication)."""
    if _state["timer"] is not None:
        return
    gc.disable()
    timer = QTimer(owner)
    timer.setInterval(INTERVAL_MS)
    timer.timeout.connect(check)
    timer.start()
    _state["timer"] = timer


def installed() -> bool:
    """True while collection is left to the GUI thread."""
    return _state["timer"] is not None
