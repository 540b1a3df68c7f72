"""Background tasks (superqt workers): results for a widget deleted meanwhile, errors as one sentence."""

import threading

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from kdstudio.core.errors import KDError  # noqa: E402

WAIT_MS = 60_000


def _delete(widget):
    widget.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)


def test_a_task_result_for_a_deleted_widget_is_dropped(qtbot):
    from kdstudio.gui import tasks
    owner = QWidget()
    release, got = threading.Event(), []
    task = tasks.start_task(lambda: release.wait(WAIT_MS) and "result", owner=owner, on_done=got.append,
                            on_error=lambda m, d: got.append(m))
    _delete(owner)  # the page was closed while its job ran
    with qtbot.waitSignal(task.worker.finished, timeout=WAIT_MS):
        release.set()
    qtbot.wait(50)  # the queued result would be delivered now
    assert got == []  # and nothing crashed: pytest-qt fails a test whose Qt slot raised


def test_a_task_reports_its_result_and_errors_as_one_sentence(qtbot):
    from kdstudio.gui import tasks
    owner = QWidget()
    qtbot.addWidget(owner)
    task = tasks.start_task(lambda a, b: a + b, 2, 3, owner=owner)
    with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
        pass
    assert task.result == 5 and task.error is None

    def fails(kind):
        raise kind("The teacher file 'x.pt' does not exist; check teacher.path.")
    errors = []
    for kind in (KDError, ValueError):
        task = tasks.start_task(fails, kind, owner=owner, on_error=lambda m, d: errors.append((m, d)))
        with qtbot.waitSignal(task.finished, timeout=WAIT_MS):
            pass
    (kd, kd_details), (bug, bug_details) = errors
    assert kd == "The teacher file 'x.pt' does not exist; check teacher.path." and "Traceback" in kd_details
    assert bug.startswith("Unexpected error: ValueError(") and "in fails" in bug_details


def test_garbage_is_collected_in_the_gui_thread_only(qtbot):
    """A collection in a worker thread deleted Qt objects there and could hang the window (gui/gcguard.py)."""
    import gc

    from kdstudio.gui import gcguard
    from kdstudio.gui.app import make_app
    make_app()
    assert gcguard.installed() and not gc.isenabled()
    counts = []

    def allocate():
        for _ in range(50_000):
            a = {}
            a["me"] = a  # cyclic garbage, far past the collector's threshold
        counts.append(gc.get_count()[0])
    worker = threading.Thread(target=allocate)
    worker.start()
    worker.join()
    assert counts[0] > gc.get_threshold()[0]  # nothing was collected in that thread
    qtbot.waitUntil(lambda: gc.get_count()[0] < gc.get_threshold()[0], timeout=WAIT_MS)  # the GUI thread's timer did


def test_what_is_alive_once_the_window_is_built_leaves_the_collector_s_walks():
    """A full collection walked every object (240k with torch and the pages: 300-400 ms); frozen ones are skipped."""
    import gc

    from kdstudio.gui import gcguard
    kept = [[i] for i in range(1000)]  # long-lived objects, as the pages' are
    frozen = gcguard.freeze()
    try:
        assert frozen >= len(kept) and gc.get_freeze_count() == frozen
        walked = {id(o) for o in gc.get_objects()}  # every generation a collection walks
        assert not any(id(x) in walked for x in kept)
    finally:
        gc.unfreeze()
