"""How responsive the window stays while it trains: event-loop stalls during the demo run, and tab-switch times.

Run:  python benchmarks/bench_gui_stall.py [--load N] [--page Train] [--profile] [--reference-s S]

Starts N CPU-bound processes beside it (`while True: pass`, default 2: a machine that is also busy), then, in fresh
offscreen processes:
  * reference: a bare Qt window with the same stall probe (a 10 ms precise timer), for --reference-s seconds;
  * the app: the window at 1280×800 with the Digits demo project; every tab clicked on the tab bar twice (the first
    round builds each page, the second only switches), then the demo run with --page visible, the probe recording.
Prints p50/p99/max stall (ms) of both and their ratio, and each tab switch in ms (click to painted); before the
clicks the window builds its other pages in idle ticks as the app does (prebuild.py; --no-prebuild: not). --profile
adds cProfile's top functions of the GUI thread during the run (the training thread is not profiled).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

REFERENCE = r"""
import json, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel
from kdstudio.gui.probe import StallProbe
app = QApplication([]); w = QLabel("reference"); w.resize(1280, 800); w.show()
probe = StallProbe(10); probe.start()
QTimer.singleShot(int(float(sys.argv[1]) * 1000), app.quit)
app.exec()
print(json.dumps(probe.stats()))
"""

APP = r"""
import cProfile, io, json, pstats, sys, time
from PySide6.QtCore import QTimer, Qt
from PySide6.QtTest import QTest
from kdstudio.gui.app import make_app
from kdstudio.gui.main_window import MainWindow, PAGES
page, profile, stacks, no_prebuild = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4] == "1"
app = make_app(); w = MainWindow(); w.open_initial(demo=True); w.resize(1280, 800); w.show()
for _ in range(5): app.processEvents()
bar = w.tabs.tabBar()
prebuilder = getattr(w, "prebuilder", None)  # --root may be a checkout that builds pages only when clicked
prebuild = {}
if prebuilder is not None and not no_prebuild:
    from kdstudio.gui.probe import StallProbe
    pre_probe = StallProbe(10); pre_probe.start()
    builds = {}  # page -> (wall ms, CPU ms) of its build in the chain
    def _timed_build(name, factory):
        def build():
            t0, c0 = time.perf_counter(), time.thread_time()
            page = factory()
            builds[name] = (round((time.perf_counter() - t0) * 1e3), round((time.thread_time() - c0) * 1e3))
            return page
        return build
    for name, slot in w.slots.items():
        slot._factory = _timed_build(name, slot._factory)
    t = time.perf_counter(); prebuilder.start()
    while prebuilder.remaining() and time.perf_counter() - t < 60:
        app.processEvents(); time.sleep(0.002)
    for _ in range(3): app.processEvents()
    pre_probe.stop()
    prebuild = {"s": time.perf_counter() - t, "stall": pre_probe.stats(), "builds": builds}
from kdstudio.gui import plots as _plots
costs = {"paint": [], "refresh": []}  # (wall ms, GUI-thread CPU ms) of each plot paint and curve update

def timed(kind, fn):
    def wrapper(*a, **k):
        t, c = time.perf_counter(), time.thread_time()
        try:
            return fn(*a, **k)
        finally:
            if w.run.probe.active:
                costs[kind].append(((time.perf_counter() - t) * 1e3, (time.thread_time() - c) * 1e3))
    return wrapper
_view = getattr(_plots, "LivePlotWidget", None) or _plots.pg.PlotWidget  # --root may be an older checkout
_view.paintEvent = timed("paint", _view.paintEvent)
_plots.PlotPanel.refresh = timed("refresh", _plots.PlotPanel.refresh)

def click_tab(name):
    i = PAGES.index(name)
    t, c = time.perf_counter(), time.thread_time()
    QTest.mouseClick(bar, Qt.LeftButton, pos=bar.tabRect(i).center())
    app.processEvents()  # the new page's layout and paint
    cpu_ms[name] = (time.thread_time() - c) * 1e3  # the window's own work; the rest of the wall time is waiting
    return (time.perf_counter() - t) * 1e3
cpu_ms = {}

switches = {"first": {}, "again": {}, "cpu_first": {}, "cpu_again": {}}
for rnd in ("first", "again"):
    for name in PAGES[1:] + PAGES[:1]:
        switches[rnd][name] = click_tab(name)
        switches["cpu_" + rnd][name] = cpu_ms[name]
result = {"switch_ms": switches, "prebuild": prebuild}
import gc
gc_ms = {}  # generation -> durations (ms) of the collections in the window's process during the run
_gc_t = []
def _on_gc(phase, info):
    if phase == "start":
        _gc_t[:] = [time.perf_counter()]
    elif _gc_t and w.run.probe.active:
        gc_ms.setdefault(str(info["generation"]), []).append((time.perf_counter() - _gc_t[0]) * 1e3)
gc.callbacks.append(_on_gc)
big = []           # (seconds into the run, ms late, what the window was last told) of each stall of 100+ ms
last_kinds = [""]
def _told(batch):
    kinds = sorted({e.kind for e in batch})
    stages = [e.data.get("stage") for e in batch if e.kind == "stage_started"]
    last_kinds[0] = ",".join(kinds) + (f" {stages}" if stages else "")
w.run.events.connect(_told)
_probe_tick = w.run.probe._tick
def _tick_and_note():
    before = len(w.run.probe.samples)
    _probe_tick()
    if len(w.run.probe.samples) > before and w.run.probe.samples[-1] >= 100 and "t_start" in result:
        big.append((round(time.perf_counter() - result["t_start"], 1), round(w.run.probe.samples[-1]),
                    last_kinds[0]))
w.run.probe._timer.timeout.disconnect()
w.run.probe._timer.timeout.connect(_tick_and_note)
prof = cProfile.Profile() if profile else None
seen = {}

def watchdog():
    # samples the GUI thread's stack whenever the probe's next tick is 40+ ms late: what the window was doing
    import threading, traceback
    main = threading.main_thread().ident
    while not result.get("stall"):
        time.sleep(0.01)
        last = w.run.probe._last
        if w.run.probe.active and last and time.perf_counter() - last > 0.05:
            frame = sys._current_frames().get(main)
            if frame is not None:
                key = "".join(traceback.format_stack(frame, limit=12)[-12:])
                seen[key] = seen.get(key, 0) + 1

def go():
    click_tab(page)
    result["t_start"] = time.perf_counter()
    if not w.run.start():
        print(json.dumps({"error": "cannot start"})); app.exit(2); return
    result["worker"] = type(w.run.runner.worker).__name__
    if prof: prof.enable()
    if stacks:
        import threading; threading.Thread(target=watchdog, daemon=True).start()

def ended(*_):
    if prof: prof.disable()
    result["stall"] = w.run.last_stall
    result["run_s"] = time.perf_counter() - result.pop("t_start")
    result["costs"] = costs
    result["gc_ms"] = gc_ms
    result["big"] = big
    QTimer.singleShot(100, app.quit)

started = []
def once(*_):
    if not started:
        started.append(1); QTimer.singleShot(200, go)
w.hub.catalog_ready.connect(once); w.hub.info_failed.connect(once)
w.run.finished.connect(ended); w.run.failed.connect(ended)
if page:
    QTimer.singleShot(0, w.hub.load_catalog)
    app.exec()
if prof:
    s = io.StringIO(); pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(25)
    s2 = io.StringIO(); pstats.Stats(prof, stream=s2).sort_stats("cumulative").print_stats(40)
    result["profile"] = s.getvalue()[-6000:] + s2.getvalue()[-9000:]
if stacks:
    result["stacks"] = "\n".join(f"---- {n} samples\n{k}" for k, n in sorted(seen.items(), key=lambda kv: -kv[1])[:12])
w.close()
print("RESULT " + json.dumps(result))
"""


def child(code: str, *args: str, home: str, run_in: str = "", root: Path = ROOT, nice: str = "") -> dict:
    """A fresh offscreen process running `code` on the kdstudio of `root`; its last JSON line."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "KDSTUDIO_HOME": home, "PYTHONPATH": str(root),
           "KDSTUDIO_RUN_IN": run_in, "KDSTUDIO_RUN_NICE": nice}
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=root, env=env, capture_output=True, text=True,
                         timeout=900)
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    if out.returncode or not lines:
        raise SystemExit(f"child failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def fmt(s: dict) -> str:
    """p50/p99/max of a probe's stats."""
    return f"p50 {s['p50_ms']:6.1f}  p99 {s['p99_ms']:6.1f}  max {s['max_ms']:6.1f} ms  ({s['n']} ticks)"


def main() -> None:
    """Print stall figures of the app during a run and of a bare Qt window, and tab-switch times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=2, help="CPU-bound processes beside it (default 2)")
    parser.add_argument("--page", default="Train", help="the page on screen during the run")
    parser.add_argument("--no-run", action="store_true", help="only the tab switches (no demo run, no reference)")
    parser.add_argument("--reference-s", type=float, default=10.0)
    parser.add_argument("--profile", action="store_true", help="cProfile the GUI thread during the run")
    parser.add_argument("--process", action="store_true",
                        help="the engine in a child process (KDSTUDIO_RUN_IN=process), not the window's thread")
    parser.add_argument("--thread", action="store_true",
                        help="the engine in a thread of the window (KDSTUDIO_RUN_IN=thread)")
    parser.add_argument("--nice", default="", help="the child process's niceness (KDSTUDIO_RUN_NICE)")
    parser.add_argument("--root", default=str(ROOT),
                        help="the checkout whose window is measured (e.g. another worktree, for before/after)")
    parser.add_argument("--no-prebuild", action="store_true",
                        help="leave the pages to be built when their tab is first clicked (the window's old way)")
    parser.add_argument("--stacks", action="store_true",
                        help="the GUI thread's stacks sampled during stalls of 50+ ms, most frequent first")
    args = parser.parse_args()
    before = f"{os.getloadavg()[0]:.1f}"
    load = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        with tempfile.TemporaryDirectory() as home:
            ref = None if args.no_run else child(REFERENCE, str(args.reference_s), home=home)
            app = child(APP, "" if args.no_run else args.page, "1" if args.profile else "0", "1" if args.stacks else "0",
                        "1" if args.no_prebuild else "0", home=home,
                        run_in="process" if args.process else "thread" if args.thread else "",
                        root=Path(args.root).resolve(), nice=args.nice)
    finally:
        for p in load:
            p.kill()
            p.wait()
    print(f"checkout: {args.root}")
    print(f"load beside it: {args.load} × `while True: pass`; {os.cpu_count()} cores; page on screen: {args.page}; "
          f"engine in {'a child process' if app.get('worker') == 'ProcessWorker' else 'a thread of the window'}"
          + (f" at nice {args.nice}" if args.nice and app.get("worker") == "ProcessWorker" else ""))
    print(f"  load average before/after: {before} / {os.getloadavg()[0]:.1f}")
    if "run_s" in app:
        print(f"  run duration   : {app['run_s']:.1f} s (Start to the summary, the demo with this load beside it)")
    if ref is not None:
        print(f"  bare Qt window : {fmt(ref)}")
        stall = app["stall"]
        print(f"  app during run : {fmt(stall)}")
        print(f"  ratio app/bare : p99 ×{stall['p99_ms'] / max(ref['p99_ms'], 0.1):.1f}, "
              f"max ×{stall['max_ms'] / max(ref['max_ms'], 0.1):.1f}")
    for kind, rows in app.get("costs", {}).items():
        if rows:
            wall, cpu = sorted(r[0] for r in rows), sorted(r[1] for r in rows)
            print(f"  plot {kind:<7}: {len(rows)} calls; wall median {wall[len(wall) // 2]:.1f} ms, "
                  f"max {wall[-1]:.1f} ms; GUI-thread CPU median {cpu[len(cpu) // 2]:.1f} ms, max {cpu[-1]:.1f} ms")
    if app.get("big"):
        print("  stalls of 100+ ms (s into the run, ms, the last events before): "
              + "; ".join(f"{t} s {ms} ms [{k}]" for t, ms, k in app["big"][:15]))
    for gen, rows in sorted(app.get("gc_ms", {}).items()):
        print(f"  gc gen {gen}: {len(rows)} collections in the window's process; max {max(rows):.1f} ms, "
              f"total {sum(rows):.0f} ms")
    if app.get("prebuild"):
        pre = app["prebuild"]
        print(f"  pages built ahead in idle ticks: {pre['s']:.1f} s after the window was shown; the event loop's "
              f"longest wait meanwhile {pre['stall']['max_ms']:.0f} ms (one page's build); wall/CPU ms: "
              + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in pre.get("builds", {}).items()))
    first = "first open (pages built ahead)" if app.get("prebuild") else "first open (builds the page)"
    for rnd, label in (("first", first), ("again", "switch to a built page")):
        times = app["switch_ms"][rnd]
        print(f"  tab switch, {label}: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items())
              + f" ms; max {max(times.values()):.0f} ms")
        if "cpu_" + rnd in app["switch_ms"]:
            cpu = app["switch_ms"]["cpu_" + rnd]
            print(f"    the window's CPU time in them: " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
                  + f" ms; max {max(cpu.values()):.0f} ms")
    for key in ("profile", "stacks"):
        if key in app:
            print(app[key])


if __name__ == "__main__":
    main()
