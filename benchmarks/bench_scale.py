"""Memory and speed of the streamed data path at 10k, 30k and 100k images (issue 12, section 5).

    python benchmarks/bench_scale.py                       # 10k, 30k, 100k images at 64 px, 150 steps per row
    python benchmarks/bench_scale.py --sizes 10000 --steps 40
    python benchmarks/bench_scale.py --e2e 100000          # one whole run: teacher file, distill, baseline, eval, export

The image folders (PNG, 10 classes, each a smooth colour pattern under noise) are generated once under
$KD_BENCH_DIR (default /tmp/kdstudio-bench) and reused. Each size runs in its own process (peak RSS is a
per-process high-water mark), which measures, in this order:

  kd      the engine's StageRunner on the streamed folder, teacher every step (cache off): samples/s, peak RSS of
          the training process and of its largest decoding worker; peak device memory on a GPU
  hand    a hand-written KD loop over an ImageFolder-style Dataset + DataLoader (same workers, batch, transforms,
          models, optimizer): samples/s
  cached  the engine with the disk teacher-output cache: the fill's samples/s, then the cached steps' samples/s
  student student-only streamed training (no teacher) in the engine: samples/s
  resident the resident path at this size when `auto` would keep it resident (else skipped, and why)

Ratios printed: kd/hand (target ≥ 0.95), cached/student (target ≥ 0.9), RSS against the smallest size (target
flat within ±15 %). Speed figures are samples/s over `--steps` steps after the first batch arrived.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(os.environ.get("KD_BENCH_DIR", "/tmp/kdstudio-bench"))
SIZE, CLASSES, BATCH = 64, 10, 128


# ---- the image folders ------------------------------------------------------------------------------------

def _protos(size: int) -> np.ndarray:
    rng = np.random.default_rng(1234)
    low = rng.random((CLASSES, 8, 8, 3))
    rep = size // 8
    return np.kron(low, np.ones((1, rep, rep, 1)))  # smooth blocks: learnable, not trivial under the noise


def _write_chunk(args) -> None:
    from PIL import Image
    root, start, stop, size = args
    protos = _protos(size)
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        c = i % CLASSES
        a = np.clip(protos[c] + 0.35 * rng.standard_normal((size, size, 3)), 0, 1)
        Image.fromarray((a * 255).astype(np.uint8)).save(Path(root) / f"c{c}" / f"{i:07d}.png", compress_level=1)


def make_folder(n: int, size: int = SIZE) -> Path:
    """The cached folder of n images (generated on first use with every core)."""
    from multiprocessing import Pool
    root = ROOT / f"folder-{n}-{size}px"
    if (root / ".complete").is_file():
        return root
    for c in range(CLASSES):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    chunks = [(str(root), s, min(s + 2000, n), size) for s in range(0, n, 2000)]
    with Pool(os.cpu_count()) as pool:
        pool.map(_write_chunk, chunks)
    (root / ".complete").write_text(str(n))
    print(f"  generated {n:,} images in {time.perf_counter() - t0:.0f} s under {root}", flush=True)
    return root


# ---- the measurements (one process per size) -----------------------------------------------------------------

def _peak_rss_mb() -> tuple[float, float]:
    """(this process's peak RSS, the largest finished child's) in MB."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def _config(path: Path, steps: int):
    from kdstudio.core.config import Config
    cfg = Config()
    cfg.data.source, cfg.data.path, cfg.data.mode, cfg.data.batch_size = "folder", str(path), "streamed", BATCH
    cfg.data.normalize = "none"  # the hand loop and the engine see the same inputs
    # MLPs: on a 2-core CPU a CNN at 64 px trains at ~100 samples/s, which would measure the convolutions, not
    # the data path; these step at several thousand samples/s, so decoding is the larger share (as on a GPU).
    cfg.teacher.arch, cfg.teacher.width, cfg.teacher.depth = "mlp", 256, 2
    cfg.student.arch, cfg.student.width, cfg.student.depth = "mlp", 32, 1
    cfg.distill.log_every = 10
    return cfg


def _models(cfg, shape):
    import torch
    from kdstudio.core import models
    torch.manual_seed(0)
    teacher = models.build(cfg.teacher.arch, CLASSES, shape, cfg.teacher.width, cfg.teacher.depth).eval()
    torch.manual_seed(1)
    student = models.build(cfg.student.arch, CLASSES, shape, cfg.student.width, cfg.student.depth)
    return teacher, student


def _engine_rate(bundle, cfg, steps: int, *, teacher, cache: bool, tmp: Path, name: str) -> dict:
    """Samples/s of `steps` engine steps (timed from the first STEP event; the cache fill timed apart)."""
    import torch
    from kdstudio.core import events as ev
    from kdstudio.core import losses
    from kdstudio.core.errors import RunStopped
    from kdstudio.core.models.frozen import FrozenTeacher
    from kdstudio.core.train.loop import CrossEntropy, StageRunner, StageSpec
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    _, student = _models(cfg, bundle.input_shape)
    student.to(device)
    frozen = FrozenTeacher(teacher.to(device)).module if teacher is not None else None
    objective = (losses.build_objective(cfg.distill, teacher=frozen, student=student,
                                        example_input=bundle.x_train[:2].to(device)) if teacher is not None
                 else CrossEntropy())
    control = ev.RunControl()
    marks: dict = {}

    def emit(kind, stage, **data):
        now = time.perf_counter()
        if kind == ev.CACHE_FILL:
            marks.setdefault("fill_start", now)
            marks["fill_end"] = now
        if kind == ev.STEP:
            marks.setdefault("first", (now, data["global_step"]))
            marks["last"] = (now, data["global_step"])
            if data["global_step"] >= steps:
                control.stop()
    spec = StageSpec(name, student, objective, 1, 1e-3, batch_size=BATCH, teacher=frozen, cache_teacher=cache,
                     log_every=10, augment="none")
    runner = StageRunner(spec, x=bundle.x_train, y=bundle.y_train.to(device), x_val=bundle.x_val,
                         y_val=bundle.y_val.to(device), device=device, amp_dtype=None, emit=emit, control=control,
                         checkpoint_path=tmp / f"{name}.pt", seed=0, cache_dir=tmp / "cache")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        runner.run()
    except RunStopped:
        pass
    (t0, s0), (t1, s1) = marks["first"], marks["last"]
    out = {"samples_per_s": (s1 - s0) * BATCH / max(t1 - t0, 1e-9)}
    if "fill_start" in marks:
        out["fill_samples_per_s"] = len(bundle.y_train) / max(marks["fill_end"] - marks["fill_start"], 1e-9)
    if device.type == "cuda":
        out["peak_device_mb"] = torch.cuda.max_memory_allocated() / 2**20
    runner.stream = None
    return out


class _ImageFolder:
    """What torchvision's ImageFolder + ToTensor do: (path, class) pairs, PIL decode → RGB → float CHW."""

    def __init__(self, files, labels):
        self.samples = list(zip(files, labels))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        import torch
        from PIL import Image
        path, label = self.samples[i]
        with Image.open(path) as im:
            a = np.asarray(im.convert("RGB"), dtype=np.uint8)
        return torch.from_numpy(a.transpose(2, 0, 1).copy()).float().div_(255.0), label


def _hand_rate(bundle, cfg, steps: int, teacher, workers: int) -> float:
    """Samples/s of a plain PyTorch KD loop over the same training files."""
    import torch
    import torch.nn.functional as F
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x = bundle.x_train
    files = [x.reader.files[int(i)] for i in x.index]
    ds = _ImageFolder(files, bundle.y_train.tolist())
    extra = {"prefetch_factor": 2, "persistent_workers": True} if workers else {}
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=workers,
                                         pin_memory=device.type == "cuda", drop_last=True, **extra)
    _, student = _models(cfg, bundle.input_shape)
    teacher, student = teacher.to(device), student.to(device)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3, weight_decay=1e-4)
    T, alpha = cfg.distill.temperature, cfg.distill.alpha
    t0, step = None, 0
    while step <= steps:  # epochs until `steps` timed steps, as the engine rows cross epochs too
        for xb, yb in loader:
            if step == 1:
                t0 = time.perf_counter()  # timed from the first batch, like the engine rows
            if step > steps:
                break
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with torch.no_grad():
                t = teacher(xb)
            s = student(xb)
            kd = F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t / T, 1), reduction="batchmean", log_target=True)
            loss = alpha * kd * T * T + (1 - alpha) * F.cross_entropy(s, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return steps * BATCH / (time.perf_counter() - t0)


def measure(n: int, steps: int) -> dict:
    """Every row for one folder size (run in a fresh process)."""
    import tempfile

    import torch
    from kdstudio.core.data import load_data
    from kdstudio.core.data.stream import choose_mode
    torch.set_num_threads(int(os.environ.get("KD_THREADS", "1")))
    path = make_folder(n)
    cfg = _config(path, steps)
    t0 = time.perf_counter()
    bundle = load_data(cfg)
    out = {"n": n, "load_s": time.perf_counter() - t0, "workers": bundle.x_train.workers,
           "threads": torch.get_num_threads()}
    teacher, _ = _models(cfg, bundle.input_shape)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out["kd"] = _engine_rate(bundle, cfg, steps, teacher=teacher, cache=False, tmp=tmp, name="kd")
        out["rss_mb"], out["worker_rss_mb"] = _peak_rss_mb()
        out["hand"] = _hand_rate(bundle, cfg, steps, teacher, bundle.x_train.workers)
        out["cached"] = _engine_rate(bundle, cfg, steps, teacher=teacher, cache=True, tmp=tmp, name="cached")
        out["student"] = _engine_rate(bundle, cfg, steps, teacher=None, cache=False, tmp=tmp, name="student")
        # Second rounds, interleaved, best of two: on a shared machine one row can catch a quiet or a busy minute.
        kd2 = _engine_rate(bundle, cfg, steps, teacher=teacher, cache=False, tmp=tmp, name="kd2")
        out["hand"] = max(out["hand"], _hand_rate(bundle, cfg, steps, teacher, bundle.x_train.workers))
        out["kd"]["samples_per_s"] = max(out["kd"]["samples_per_s"], kd2["samples_per_s"])
        student2 = _engine_rate(bundle, cfg, steps, teacher=None, cache=False, tmp=tmp, name="student2")
        out["student"]["samples_per_s"] = max(out["student"]["samples_per_s"], student2["samples_per_s"])
        auto = cfg.copy()
        auto.data.mode = "auto"
        mode, reason = choose_mode(auto, n, (3, SIZE, SIZE))
        out["auto"] = reason
        if mode == "resident":
            resident = load_data(auto)
            out["resident"] = _engine_rate(resident, cfg, steps, teacher=teacher, cache=False, tmp=tmp,
                                           name="resident")
    return out


# ---- the end-to-end run ---------------------------------------------------------------------------------------

def end_to_end(n: int, epochs: int) -> dict:
    """teacher from a file → distill → baseline → evaluate → export on the n-image folder, streamed."""
    import tempfile

    import torch
    from kdstudio.core.pipeline import engine
    torch.set_num_threads(int(os.environ.get("KD_THREADS", "1")))
    path = make_folder(n)
    cfg = _config(path, 0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        teacher = tmp / "teacher.pt"  # trained in its own process, so its resident data is not in this peak
        subprocess.run([sys.executable, __file__, "--teacher-out", str(teacher)], check=True)
        cfg.data.mode = "auto"
        cfg.teacher.source, cfg.teacher.path = "file", str(teacher)
        cfg.data.normalize = "none"
        cfg.distill.epochs, cfg.baseline.enabled = epochs, True
        cfg.export.formats = ["torchscript", "onnx"]
        cfg.evaluate.latency_repeats = 5
        t0 = time.perf_counter()
        summary = engine.run(cfg, tmp / "run", on_event=_print_some)
        wall = time.perf_counter() - t0
        rss, worker = _peak_rss_mb()
    return {"n": n, "status": summary["status"], "wall_s": wall, "rss_mb": rss, "worker_rss_mb": worker,
            "teacher": summary["teacher"]["accuracy"], "student": summary["student"]["accuracy"],
            "baseline": (summary.get("baseline") or {}).get("accuracy"),
            "exports": [e["format"] for e in summary.get("exports", [])], "error": summary.get("error")}


def _print_some(e) -> None:
    from kdstudio.core import events as ev
    text = ev.describe(e)
    if text and e.kind != ev.CHECKPOINT:
        print("   ", text, flush=True)


def _pretrained_teacher(cfg, path: Path) -> Path:
    """The teacher file: the teacher MLP trained for a few epochs on 5,000 freshly generated images of the same classes."""
    import torch
    import torch.nn.functional as F
    small = make_folder(5000)
    from kdstudio.core.data import load_data
    c = cfg.copy()
    c.data.path, c.data.mode = str(small), "resident"
    b = load_data(c)
    teacher, _ = _models(cfg, b.input_shape)
    teacher.train()
    opt = torch.optim.AdamW(teacher.parameters(), lr=3e-3)
    for _ in range(4):
        perm = torch.randperm(len(b.y_train))
        for i in range(0, len(perm) - BATCH + 1, BATCH):
            idx = perm[i:i + BATCH]
            loss = F.cross_entropy(teacher(b.x_train[idx]), b.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.save(teacher.state_dict(), path)
    return path


# ---- the report -------------------------------------------------------------------------------------------

def report(rows: list[dict]) -> None:
    """The tables benchmarks/README.md holds."""
    print("\n| images | kd samples/s | hand samples/s | kd/hand | cached samples/s | student samples/s | "
          "cached/student | cache fill samples/s | peak RSS MB (train / worker) | RSS vs smallest |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    base = rows[0]["rss_mb"]
    for r in rows:
        print(f"| {r['n']:,} | {r['kd']['samples_per_s']:,.0f} | {r['hand']:,.0f} | "
              f"{r['kd']['samples_per_s'] / r['hand']:.2f} | {r['cached']['samples_per_s']:,.0f} | "
              f"{r['student']['samples_per_s']:,.0f} | "
              f"{r['cached']['samples_per_s'] / r['student']['samples_per_s']:.2f} | "
              f"{r['cached'].get('fill_samples_per_s', 0):,.0f} | {r['rss_mb']:,.0f} / {r['worker_rss_mb']:,.0f} | "
              f"{r['rss_mb'] / base - 1:+.0%} |")
    for r in rows:
        line = f"- {r['n']:,} images: auto → {r['auto']}"
        if "resident" in r:
            line += (f"; resident KD {r['resident']['samples_per_s']:,.0f} samples/s "
                     f"({r['resident']['samples_per_s'] / r['kd']['samples_per_s']:.1f}× the streamed row)")
        print(line)
    print(f"(workers {rows[0]['workers']}, intra-op threads {rows[0]['threads']}, batch {BATCH}, {SIZE} px)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,30000,100000")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--e2e", type=int, help="run the whole pipeline on a folder of this many images")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--teacher-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.teacher_out:
        _pretrained_teacher(_config(make_folder(5000), 0), Path(args.teacher_out))
        return
    if args.one:
        print("RESULT " + json.dumps(measure(args.one, args.steps)), flush=True)
        return
    if args.e2e:
        print(json.dumps(end_to_end(args.e2e, args.epochs), indent=1))
        return
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        make_folder(n)
        proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--steps", str(args.steps)],
                              capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(proc.stdout[-2000:], proc.stderr[-4000:])
            raise SystemExit(f"the {n:,}-image row failed")
        rows.append(json.loads(line[7:]))
        r = rows[-1]
        print(f"{n:,} images: kd {r['kd']['samples_per_s']:,.0f}/s, hand {r['hand']:,.0f}/s, cached "
              f"{r['cached']['samples_per_s']:,.0f}/s, student {r['student']['samples_per_s']:,.0f}/s, peak RSS "
              f"{r['rss_mb']:,.0f} MB (worker {r['worker_rss_mb']:,.0f} MB)", flush=True)
    report(rows)


if __name__ == "__main__":
    main()
