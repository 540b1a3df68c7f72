"""How long the window takes to appear, and what building each page costs (offscreen, no torch).

Run:  python benchmarks/bench_gui_launch.py [--repeats N]

Each repeat is a fresh process (imports included, as a user's launch): seconds from the first import to the window
shown with the last project open, whether torch was imported by then (it must not be: PyTorch loads in the
background after the window is up), and the milliseconds each page takes to build when it is first opened.
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

CHILD = r"""
import json, sys, time
t = time.perf_counter()
from kdstudio.gui.app import make_app
from kdstudio.gui.main_window import MainWindow, PAGES
app = make_app(); w = MainWindow(); w.open_initial(); w.show(); app.processEvents()
shown = time.perf_counter() - t
torch = "torch" in sys.modules
pages = {}
for name in PAGES:
    if w.pages.built(name) is None:
        t = time.perf_counter(); w.show_page(name); app.processEvents(); pages[name] = (time.perf_counter() - t) * 1e3
print(json.dumps({"shown_s": shown, "torch": torch, "pages_ms": pages}))
"""


def one_launch(home: str) -> dict:
    """One fresh process: launch figures as a dict."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "KDSTUDIO_HOME": home, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Print the window's launch time and each page's build time (best of --repeats)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        runs = [one_launch(home) for _ in range(args.repeats)]  # the first creates the demo project
    shown = sorted(r["shown_s"] for r in runs)
    print(f"window shown after {shown[0]:.2f} s (best of {len(runs)}; median {shown[len(shown) // 2]:.2f} s); "
          f"torch imported by then: {any(r['torch'] for r in runs)}")
    for name in runs[0]["pages_ms"]:
        print(f"  {name:<9} page built on first open: {min(r['pages_ms'][name] for r in runs):6.0f} ms")


if __name__ == "__main__":
    main()
