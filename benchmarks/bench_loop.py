"""Distillation-loop throughput: the engine against a naive loop, a hand-tuned loop and student-only training.

Run:  python benchmarks/bench_loop.py [--quick] [--pairs digits,resnet] [--batches 128,512] [--steps N]

All loops run in this one process on the same models and data, and the script prints samples/s for each and the
ratios that matter (d/b, e/c, e/a, f/d'). (d) and (e) time the engine's stage loop alone; (d') times the whole
engine.run (distill stage samples/s from its summary) and (f) the same run driven by the GUI worker, so f/d' is
the cost of the window. During (f) a 10 ms QTimer probe records the event-loop stall (p50/p99). On a machine without a GPU the resnet pair runs a few steps only (a smoke
run; its ratios say little). Timings are wall-clock over `--steps` steps after warm-up, with a device sync at the
start and end of the timed window only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from kdstudio.core import events, losses, models  # noqa: E402
from kdstudio.core.pipeline.single import resolve_amp  # noqa: E402
from kdstudio.core.train.loop import CrossEntropy, StageRunner, StageSpec  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _pair(name: str, device):
    """(teacher, student factory, x, y) for a named model pair."""
    if name == "digits":
        from kdstudio.core.data.digits import load_digits_arrays
        from kdstudio.core.config.templates import demo_config
        cfg = demo_config()
        x, y = load_digits_arrays()
        x = (x - x.mean()) / x.std()
        t, s = cfg.teacher, cfg.student
        teacher = models.build(t.arch, 10, (1, 8, 8), t.width, t.depth)
        make_student = lambda: models.build(s.arch, 10, (1, 8, 8), s.width, s.depth)  # noqa: E731
        return teacher, make_student, x, y
    n = 8192 if device.type == "cuda" else 1024
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 100, (n,), generator=g)
    teacher = models.build("resnet32x4", 100, (3, 32, 32))
    return teacher, lambda: models.build("resnet8x4", 100, (3, 32, 32)), x, y


def naive_loop(teacher, student, x, y, batch, steps, device):
    """(a) the source document's style: fp32, CPU DataLoader, .item() every step."""
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch, shuffle=True,
                                         drop_last=True)
    teacher.to(device).eval()
    student.to(device).train()
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    kd = losses.create("kd")
    done, t0 = 0, None
    while done < steps + 3:
        for xb, yb in loader:
            if done == 3:
                _sync(device)
                t0 = time.perf_counter()
            xb, yb = xb.to(device), yb.to(device)
            with torch.no_grad():
                tl = teacher(xb)
            loss = kd(student(xb), tl, yb)["total"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()  # the per-step host sync is the point of this loop
            done += 1
            if done >= steps + 3:
                break
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def tuned_loop(teacher, student, x, y, batch, steps, device, amp_dtype, with_teacher=True):
    """(b) hand-tuned KD: device data, autocast, channels_last, inference-mode teacher, no per-step sync.
    (c) with_teacher=False: the same loop training the student on labels only."""
    x, y = x.to(device), y.to(device)
    cl = device.type == "cuda" and x.dim() == 4
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
        teacher.to(memory_format=torch.channels_last)
        student.to(memory_format=torch.channels_last)
    teacher.to(device).eval()
    student.to(device).train()
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3, **({"fused": True} if device.type == "cuda" else {}))
    kd = losses.create("kd")
    n = len(y)
    autocast = torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    acc = torch.zeros((), device=device)
    perm = torch.randperm(n, device=device)
    for i in range(steps + 3):
        if i == 3:
            _sync(device)
            t0 = time.perf_counter()
        j = (i * batch) % (n - batch + 1)
        idx = perm[j:j + batch]
        xb, yb = x[idx], y[idx]
        with autocast:
            if with_teacher:
                with torch.inference_mode():
                    tl = teacher(xb)
                tl = tl.float().clone()
            out = student(xb)
        loss = kd(out.float(), tl, yb)["total"] if with_teacher else F.cross_entropy(out.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc += loss.detach()
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def engine_loop(teacher, student, x, y, batch, steps, device, amp_dtype, cache: bool, control=None, emit=None):
    """(d)/(e) the kdstudio stage loop, teacher cache off/on; one epoch of `steps` steps, timed inside."""
    n = steps * batch
    reps = (n + len(y) - 1) // len(y)
    xs, ys = x.repeat(reps, *([1] * (x.dim() - 1)))[:n].to(device), y.repeat(reps)[:n].to(device)
    teacher.to(device)
    models.freeze(teacher)
    student.to(device)
    if device.type == "cuda" and x.dim() == 4:
        student.to(memory_format=torch.channels_last)
        teacher.to(memory_format=torch.channels_last)
    spec = StageSpec("distill", student, losses.create("kd"), epochs=1, lr=1e-3, batch_size=batch,
                     teacher=teacher, cache_teacher=cache, log_every=50)
    import tempfile
    ckpt = Path(tempfile.mkdtemp()) / "bench.pt"
    runner = StageRunner(spec, x=xs, y=ys, x_val=xs[:batch], y_val=ys[:batch], device=device, amp_dtype=amp_dtype,
                         emit=emit or (lambda *a, **k: None), control=control or events.RunControl(),
                         checkpoint_path=ckpt, seed=0)
    runner.save_checkpoint = lambda complete=False: None  # time the loop, not the disk
    result = runner.run()
    return result.samples_per_s


def student_only_engine(student, x, y, batch, steps, device, amp_dtype):
    """Reference: the engine's loop with plain CE (what a cached KD step cannot beat)."""
    n = steps * batch
    reps = (n + len(y) - 1) // len(y)
    xs, ys = x.repeat(reps, *([1] * (x.dim() - 1)))[:n].to(device), y.repeat(reps)[:n].to(device)
    spec = StageSpec("baseline", student.to(device), CrossEntropy(), epochs=1, lr=1e-3, batch_size=batch,
                     log_every=50)
    import tempfile
    runner = StageRunner(spec, x=xs, y=ys, x_val=xs[:batch], y_val=ys[:batch], device=device, amp_dtype=amp_dtype,
                         emit=lambda *a, **k: None, control=events.RunControl(),
                         checkpoint_path=Path(tempfile.mkdtemp()) / "b.pt", seed=0)
    runner.save_checkpoint = lambda complete=False: None
    return runner.run().samples_per_s


def _pair_config(name: str, batch: int, steps: int, cache: bool):
    """A full-pipeline config for the pair whose distill stage runs about `steps` steps, teacher cache off/on."""
    from kdstudio.core.config.templates import demo_config
    cfg = demo_config()
    if name != "digits":
        cfg.data.source, cfg.data.synthetic_classes, cfg.data.synthetic_size = "synthetic", 100, 32
        cfg.data.synthetic_channels, cfg.data.synthetic_shift = 3, 0  # CIFAR-100-shaped, as measured before
        # On a GPU a real epoch; on the CPU (a smoke run) just enough for a few steps.
        cfg.data.synthetic_samples = max(4 * batch, 2048) if torch.cuda.is_available() else 3 * batch
        cfg.teacher.arch, cfg.teacher.width, cfg.teacher.depth = "resnet32x4", 0, 0
        cfg.student.arch, cfg.student.width, cfg.student.depth = "resnet8x4", 0, 0
        cfg.teacher.skip_sanity_check = True
    cfg.data.batch_size = batch
    cfg.teacher.epochs = 1
    n_train = 1169 if name == "digits" else int(cfg.data.synthetic_samples * 0.65)
    if name != "digits" and not torch.cuda.is_available():
        cfg.data.val_fraction = cfg.data.test_fraction = 0.1
    cfg.distill.epochs = max(1, round(steps / max(1, n_train // batch)))
    cfg.distill.cache_teacher = cache
    cfg.distill.log_every = 50
    cfg.baseline.enabled = False
    cfg.export.formats = []
    cfg.evaluate.latency_repeats = 0
    return cfg


def engine_run_direct(name, batch, steps, cache=False):
    """(d') the whole engine (engine.run) called directly; distill samples/s from its summary."""
    import tempfile
    from kdstudio.core.pipeline import engine
    return engine.run(_pair_config(name, batch, steps, cache), tempfile.mkdtemp())["distill"]["samples_per_s"]


def engine_run_via_worker(name, batch, steps, cache=False):
    """(f) the same engine.run driven by the GUI's RunThread (QThread worker, offscreen), with the
    event-loop stall probe running; returns (samples/s, stall stats) or (None, None) without the GUI."""
    import os
    import tempfile
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from PySide6.QtCore import QEventLoop
        from PySide6.QtWidgets import QApplication
        from kdstudio.gui.probe import StallProbe
        from kdstudio.gui.worker import RunThread
    except ImportError:
        return None, None
    app = QApplication.instance() or QApplication([])
    controller, probe, loop, result = RunThread(), StallProbe(10), QEventLoop(), {}
    controller.finished.connect(lambda summary: (result.update(summary=summary), loop.quit()))
    controller.failed.connect(lambda msg, details: (result.update(error=msg), loop.quit()))
    probe.start()
    controller.start(_pair_config(name, batch, steps, cache), Path(tempfile.mkdtemp()))
    loop.exec()
    probe.stop()
    _ = app
    if "error" in result:
        raise RuntimeError(result["error"])
    return result["summary"]["distill"]["samples_per_s"], probe.stats()


def peak_memory_report(teacher, make_student, x, y, batch, device, amp_dtype):
    """GPU only: peak memory of an engine KD step (cache off) against student-only + teacher weights + one
    teacher forward's activations. Returns a dict of MiB figures, or None on the CPU."""
    if device.type != "cuda":
        return None

    def peak(fn):
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20

    steps = 5
    teacher.to("cpu")
    student_only = peak(lambda: student_only_engine(make_student(), x, y, batch, steps, device, amp_dtype))
    kd = peak(lambda: engine_loop(teacher, make_student(), x, y, batch, steps, device, amp_dtype, cache=False))
    weights = models.param_bytes(teacher) / 2**20
    xb = x[:batch].to(device)
    if xb.dim() == 4:
        xb = xb.contiguous(memory_format=torch.channels_last)

    def teacher_forward():
        with torch.no_grad(), torch.autocast("cuda", dtype=amp_dtype, enabled=amp_dtype is not None):
            teacher(xb)
    activations = peak(teacher_forward)
    bound = student_only + weights + activations
    return {"kd_step": kd, "student_only": student_only, "teacher_weights": weights,
            "teacher_forward": activations, "bound": bound, "within": kd <= bound * 1.02}


def bench_pair(name, batch, steps, device, repeats):
    """All loops for one pair and batch size: best of `repeats` for each."""
    amp_dtype, _ = resolve_amp(True, device)
    teacher, make_student, x, y = _pair(name, device)
    rows = {}

    def best(fn):
        vals = [fn() for _ in range(repeats)]
        return max(v for v in vals if v is not None) if any(v is not None for v in vals) else None

    torch.manual_seed(0)
    rows["a naive"] = best(lambda: naive_loop(teacher, make_student(), x, y, batch, steps, device))
    rows["b tuned"] = best(lambda: tuned_loop(teacher, make_student(), x, y, batch, steps, device, amp_dtype))
    rows["c student-only"] = best(lambda: tuned_loop(teacher, make_student(), x, y, batch, steps, device,
                                                     amp_dtype, with_teacher=False))
    rows["d engine, cache off"] = best(lambda: engine_loop(teacher, make_student(), x, y, batch, steps, device,
                                                           amp_dtype, cache=False))
    rows["e engine, cache on"] = best(lambda: engine_loop(teacher, make_student(), x, y, batch, steps, device,
                                                          amp_dtype, cache=True))
    rows["d' engine.run direct"] = best(lambda: engine_run_direct(name, batch, steps))
    stalls = []

    def via_worker():
        value, stall = engine_run_via_worker(name, batch, steps)
        stalls.append(stall)
        return value
    rows["f engine.run via GUI worker"] = best(via_worker)
    rows["_stall"] = stalls[-1] if stalls else None
    try:
        rows["_memory"] = peak_memory_report(teacher, make_student, x, y, batch, device, amp_dtype)
    except Exception as e:  # a report line, never a crash of the whole benchmark
        rows["_memory"] = {"error": repr(e)}
    return rows


def main(argv=None):
    """Parse options, run the pairs, print the table and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default="digits,resnet")
    ap.add_argument("--batches", default="128,512")
    ap.add_argument("--steps", type=int, default=0, help="timed steps per loop (default: 200 GPU, 60 CPU)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a smoke run: few steps, one repeat")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # The GUI worker trains with one thread fewer than there are cores (a core stays free for the window); every
    # row uses that count, so f/d' compares like with like.
    torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - 1)))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}")
    for pair in args.pairs.split(","):
        batches = [64] if pair == "digits" else [int(b) for b in args.batches.split(",")]
        for batch in batches:
            steps = args.steps or (200 if device.type == "cuda" else (60 if pair == "digits" else 4))
            if args.quick:
                steps = min(steps, 20 if pair == "digits" else 2)
            rows = bench_pair(pair, batch, steps, device, 1 if args.quick else args.repeats)
            print(f"\n{pair} pair, batch {batch}, {steps} steps")
            stall, memory = rows.pop("_stall"), rows.pop("_memory")
            for k, v in rows.items():
                print(f"  {k:<30} {'n/a' if v is None else f'{v:>12,.0f} samples/s'}")
            r = {k.split()[0]: v for k, v in rows.items()}
            for label, num, den in (("d/b", "d", "b"), ("e/c", "e", "c"), ("e/a", "e", "a"), ("f/d'", "f", "d'")):
                if r.get(num) and r.get(den):
                    print(f"  ratio {label} = {r[num] / r[den]:.2f}")
            if stall:
                print(f"  UI event-loop stall during (f): p50 {stall['p50_ms']:.1f} ms, p99 {stall['p99_ms']:.1f} ms, "
                      f"max {stall['max_ms']:.1f} ms over {stall['n']} ticks of 10 ms")
            if memory and "error" in memory:
                print(f"  peak memory: could not measure ({memory['error']})")
            elif memory:
                print(f"  peak memory of a KD step (cache off) {memory['kd_step']:.0f} MiB vs bound "
                      f"{memory['bound']:.0f} MiB = student-only {memory['student_only']:.0f} + teacher weights "
                      f"{memory['teacher_weights']:.0f} + one teacher forward {memory['teacher_forward']:.0f} "
                      f"({'within' if memory['within'] else 'ABOVE'} the bound)")
            else:
                print("  peak memory: measured on a GPU only")


if __name__ == "__main__":
    main()
