"""Export formats on the digits demo student: parity, size and CPU latency of each reloaded file, as ratios.

Run:  python benchmarks/bench_export_formats.py [--threads 1] [--repeats 50] [--quantize none|int8|fp16]

Builds the demo's student architecture (MLP 64 x 2, 8,970 parameters) with seeded random weights (latency and
parity do not depend on training), exports it in every format whose package is installed, and prints each file's
max |diff| and top-1 agreement against the live model on the digits test split, its size, and its median latency at
batch 1 and 64 with the ratio to PyTorch eager (the state_dict row). Formats whose package is missing are listed
with the install command. Timings are medians after warm-up (torch.utils.benchmark); on a shared machine, run it
twice and compare.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from kdstudio.core import models  # noqa: E402
from kdstudio.core.config.templates import demo_config  # noqa: E402
from kdstudio.core.data import load_data  # noqa: E402
from kdstudio.core.outputs.artifacts import prepare_export  # noqa: E402
from kdstudio.core.outputs.export import EXTENSIONS, export_all  # noqa: E402


def main() -> None:
    """Export, reload, compare and time every installed format; print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--quantize", default="none", choices=("none", "int8", "fp16", "bf16"))
    args = p.parse_args()
    cfg = demo_config()
    data = load_data(cfg)
    torch.manual_seed(0)
    make = lambda: models.build("mlp", data.num_classes, data.input_shape, 64, 2)  # noqa: E731
    live, factory, float_model = prepare_export(make().eval(), make, {}, args.quantize, data.x_train[:512])
    with tempfile.TemporaryDirectory() as out:
        result = export_all(live, factory, {"arch": "mlp"}, list(EXTENSIONS), Path(out), data.x_test,
                            quantize=args.quantize, float_model=float_model, latency_repeats=args.repeats,
                            threads=args.threads)
    rows = result["exports"]
    eager = next((e["latency_ms"] for e in rows if e["format"] == "state_dict"), None)
    print(f"{len(data.x_test)} digits test images, {args.threads} CPU thread(s), quantize = {args.quantize}")
    print(f"{'format':<14}{'bytes':>9}{'max|diff|':>11}{'top-1':>8}{'b1 ms':>9}{'b64 ms':>9}{'b1 / eager':>12}"
          f"{'b64 / eager':>13}")
    for e in rows:
        lat = e["latency_ms"]
        r1 = lat["cpu_b1"] / eager["cpu_b1"] if eager else float("nan")
        r64 = lat["cpu_b64"] / eager["cpu_b64"] if eager else float("nan")
        print(f"{e['format']:<14}{e['bytes']:>9,}{e['max_abs_diff']:>11.1e}{e['top1_agreement']:>8.1%}"
              f"{lat['cpu_b1']:>9.3f}{lat['cpu_b64']:>9.3f}{r1:>12.2f}{r64:>13.2f}")
    for f in result["failed"]:
        print(f"{f['format']:<14}not exported: {f['error']}")


if __name__ == "__main__":
    main()
