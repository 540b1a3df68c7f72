"""Metrics of a trained model: accuracy (top-1/top-5/per class), confusion, calibration, size, FLOPs, latency.

Everything here returns plain data (dicts, lists, numbers) so the GUI, the CLI and the model card read the same
numbers. `evaluate_model` is the one call that measures a model; `comparison_table` turns several results into
rows with ratios against a reference (the teacher).
"""

from __future__ import annotations

import copy
import io

import torch
from torch import nn

from ..store.summary import ratio

ECE_BINS = 15
MAX_MISCLASSIFIED = 500  # examples kept per model for the gallery (the count is always exact)
MIN_TIMING_S = 0.02  # the least time a latency figure is measured over (Timer blocks of microsecond calls)


def input_dtype(model: nn.Module) -> torch.dtype:
    """The dtype a model's inputs must have: its floating parameters' dtype (fp16/bf16 variants), else fp32."""
    for p in list(model.parameters()) + list(model.buffers()):
        if p.is_floating_point():
            return p.dtype if p.dtype in (torch.float16, torch.bfloat16) else torch.float32
    return torch.float32


def _device_of(model: nn.Module) -> torch.device:
    for p in list(model.parameters()) + list(model.buffers()):
        return p.device
    return torch.device("cpu")


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits (fp32) for all of `x` (a tensor, or streamed inputs read batch by batch) in eval mode (the model's
    train/eval mode is restored after)."""
    from ..data.stream import iter_batches
    was_training = model.training
    model.eval()
    dtype, device = input_dtype(model), _device_of(model)
    try:
        return torch.cat([model(xb.to(device, dtype)).float() for xb in iter_batches(x, batch_size)])
    finally:
        model.train(was_training)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy as a fraction in [0, 1]."""
    if len(y) == 0:
        return float("nan")
    return (predict_logits(model, x).argmax(1).to(y.device) == y).float().mean().item()


def state_dict_bytes(model: nn.Module) -> int:
    """Size of the model's weights when saved with torch.save (its size on disk as a state_dict)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def nonzero_params(model: nn.Module) -> int:
    """Parameters that are not exactly zero (what magnitude pruning removes)."""
    return int(sum(int((p != 0).sum()) for p in model.parameters()))


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, bins: int = ECE_BINS) -> float:
    """ECE: the confidence-weighted gap between confidence and accuracy over `bins` equal-width bins."""
    if len(y) == 0:
        return float("nan")
    conf, pred = probs.max(1)
    correct = (pred == y).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = torch.zeros(())
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if inside.any():
            ece += inside.float().mean() * (conf[inside].mean() - correct[inside].mean()).abs()
    return ece.item()


def confusion_matrix(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> list[list[int]]:
    """Raw counts; row = true class, column = predicted class (sums to the number of samples)."""
    idx = y.long() * num_classes + pred.long()
    counts = torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)
    return counts.tolist()


def classification_metrics(logits: torch.Tensor, y: torch.Tensor, class_names: list[str],
                           reference_logits: torch.Tensor | None = None) -> dict:
    """Top-1, top-5 (>= 5 classes), per-class accuracy, confusion matrix, ECE, agreement, misclassified examples."""
    logits, y = logits.float().cpu(), y.cpu()
    n, k = len(y), len(class_names)
    probs = logits.softmax(1)
    conf, pred = probs.max(1)
    correct = pred == y
    out: dict = {"n": n, "top1": correct.float().mean().item() if n else float("nan"), "top5": None}
    if k >= 5 and n:
        out["top5"] = (logits.topk(5, dim=1).indices == y[:, None]).any(1).float().mean().item()
    cm = confusion_matrix(pred, y, k)
    out["confusion"] = cm
    out["class_names"] = list(class_names)
    out["per_class"] = [{"name": name, "support": sum(row), "accuracy": row[i] / sum(row) if sum(row) else None}
                        for i, (name, row) in enumerate(zip(class_names, cm))]
    out["ece"] = expected_calibration_error(probs, y)
    out["agreement"] = None
    if reference_logits is not None:
        out["agreement"] = (reference_logits.float().cpu().argmax(1) == pred).float().mean().item()
    wrong = torch.nonzero(~correct).flatten()
    out["misclassified_count"] = len(wrong)
    out["misclassified_indices"] = wrong.tolist()  # all of them: the paired KD-gain test needs every one
    out["misclassified"] = [{"index": int(i), "true": int(y[i]), "pred": int(pred[i]),
                             "confidence": round(float(conf[i]), 4)} for i in wrong[:MAX_MISCLASSIFIED]]
    return out


def flops(model: nn.Module, input_shape: tuple) -> int | None:
    """FLOPs of one forward pass at batch 1 (torch.utils.flop_counter); None when the counter cannot see them."""
    from torch.utils.flop_counter import FlopCounterMode
    m = model
    x = torch.zeros(1, *input_shape, dtype=input_dtype(m), device=_device_of(m))
    was_training = m.training
    m.eval()
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            m(x)
        total = int(counter.get_total_flops())
    except Exception:  # exotic or quantized ops the counter does not know
        return None
    finally:
        m.train(was_training)
    return total or None


class cpu_threads:
    """Context manager: run with `n` intra-op CPU threads (0 = leave PyTorch's setting), then restore it."""

    def __init__(self, n: int = 0):
        self.n, self.old = n, torch.get_num_threads()

    def __enter__(self) -> int:
        if self.n > 0:
            torch.set_num_threads(self.n)
        return torch.get_num_threads()

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.old)


def median_ms(fn, x: torch.Tensor, repeats: int = 30, warmup: int = 5, device: str | torch.device = "cpu") -> float:
    """Median wall time (ms) of fn(x) after `warmup` calls, over about `repeats` calls' worth of timing, at the
    current torch thread count (torch.utils.benchmark.Timer.blocked_autorange)."""
    import timeit

    from torch.utils.benchmark import Timer
    # Timer's default clock waits for the accelerator before each reading, which CPU work does not need.
    # num_threads: Timer sets torch's thread count while it measures; keep the one cpu_threads chose.
    clock = {"timer": timeit.default_timer} if torch.device(device).type == "cpu" else {}
    timer = Timer("fn(x)", globals={"fn": fn, "x": x}, num_threads=torch.get_num_threads(), **clock)
    per_call = timer.timeit(max(1, warmup)).median  # the warm-up, which also sizes the measurement
    # A call of milliseconds is timed alone (`repeats` samples); calls of microseconds are timed in blocks long
    # enough that the clock's own overhead does not count, for at least MIN_TIMING_S so that there are several
    # blocks. The median is over the samples.
    budget = max(per_call * max(1, repeats), MIN_TIMING_S)
    return timer.blocked_autorange(min_run_time=budget).median * 1e3


@torch.inference_mode()
def latency_ms(model: nn.Module, input_shape: tuple, batch: int = 1, device: str | torch.device = "cpu",
               repeats: int = 30, warmup: int = 5) -> float:
    """Median wall time (ms) of one forward pass of a copy of the model on `device`, after warm-up."""
    device = torch.device(device)
    m = copy.deepcopy(model).to(device).eval()
    x = torch.randn(batch, *input_shape).to(device, input_dtype(m))
    return median_ms(m, x, repeats, warmup, device)


def evaluate_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, class_names: list[str], *,
                   reference_logits: torch.Tensor | None = None, latency_repeats: int = 30,
                   gpu: torch.device | None = None, flops_hint: int | None = None,
                   threads: int = 0) -> tuple[dict, torch.Tensor]:
    """(metrics, logits) of one model on (x, y): classification metrics, params, FLOPs, bytes, latency (CPU b1/b64,
    GPU when given). `flops_hint` is used when the counter cannot count (int8 kernels)."""
    model.eval()
    logits = predict_logits(model, x)
    out = classification_metrics(logits, y.cpu(), class_names, reference_logits)
    shape = tuple(x.shape[1:])
    out["params"] = sum(p.numel() for p in model.parameters()) + _packed_params(model)
    out["nonzero_params"] = nonzero_params(model) + _packed_params(model, nonzero=True)
    counted = flops(model, shape)
    out["flops"] = counted if counted is not None else flops_hint
    out["flops_counted"] = counted is not None
    out["bytes"] = state_dict_bytes(model)
    if getattr(model, "file_bytes", None) is not None:  # a graph run by its own runtime (ONNX): no parameters to see
        out["params"] = out["nonzero_params"] = None
        out["bytes"] = model.file_bytes
    out["dtype"] = str(input_dtype(model)).replace("torch.", "")
    lat: dict = {}
    if latency_repeats > 0:
        cpu_model = model if _device_of(model).type == "cpu" else copy.deepcopy(model).to("cpu")
        with cpu_threads(threads) as n:
            for b in (1, 64):
                lat[f"cpu_b{b}"] = latency_ms(cpu_model, shape, b, "cpu", latency_repeats)
        out["cpu_threads"] = n
        if gpu is not None and gpu.type == "cuda" and not _is_quantized(model):
            for b in (1, 64):
                lat[f"gpu_b{b}"] = latency_ms(model, shape, b, gpu, latency_repeats)
    out["latency_ms"] = lat
    return out, logits


def _is_quantized(model: nn.Module) -> bool:
    return any("quantized" in type(m).__module__ for m in model.modules())


def _packed_params(model: nn.Module, nonzero: bool = False) -> int:
    """Parameter count (or non-zero count) of int8 modules, whose packed weights are not nn.Parameters."""
    total = 0
    for m in model.modules():
        if "quantized" not in type(m).__module__:
            continue
        for name in ("weight", "bias"):
            t = getattr(m, name, None)
            t = t() if callable(t) else t
            if isinstance(t, torch.Tensor):
                t = t.dequantize() if t.is_quantized else t
                total += int((t != 0).sum()) if nonzero else t.numel()
    return total


def headline(result: dict) -> dict:
    """The scalar part of an `evaluate_model` result (what summary.json and the comparison table carry)."""
    keep = ("n", "top1", "top5", "ece", "agreement", "misclassified_count", "params", "nonzero_params", "flops",
            "bytes", "dtype", "cpu_threads")
    out = {k: result.get(k) for k in keep}
    out["latency_ms"] = dict(result.get("latency_ms", {}))
    return out


def comparison_table(results: dict[str, dict], reference: str = "teacher") -> list[dict]:
    """One row per model: its headline metrics plus speed-up and compression ratios against `reference`."""
    ref = results.get(reference) or {}
    ref_lat = ref.get("latency_ms", {})
    rows = []
    for name, r in results.items():
        lat = r.get("latency_ms", {})
        row = {"model": name, **headline(r)}
        row["params_ratio"] = ratio(ref.get("params"), r.get("nonzero_params") or r.get("params"))
        row["size_ratio"] = ratio(ref.get("bytes"), r.get("bytes"))
        row["flops_ratio"] = ratio(ref.get("flops"), r.get("flops"))
        row["speedup"] = {k: ratio(ref_lat.get(k), v) for k, v in lat.items()}
        row["top1_delta"] = None if ref.get("top1") is None else r["top1"] - ref["top1"]
        rows.append(row)
    return rows


def evaluate_all(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, class_names: list[str], *,
                 reference: str = "teacher", latency_repeats: int = 30, gpu: torch.device | None = None,
                 flops_from: dict[str, str] | None = None, on_model=None, threads: int = 0) -> dict[str, dict]:
    """evaluate_model for each named model (the reference first, so the others get top-1 agreement with it);
    `flops_from` names, per int8 model, the float model whose FLOPs it reports; on_model(name) before each."""
    results: dict[str, dict] = {}
    ref_logits = None
    order = sorted(models, key=lambda n: n != reference)
    for name in order:
        if on_model:
            on_model(name)
        r, logits = evaluate_model(models[name], x, y, class_names, reference_logits=ref_logits,
                                   latency_repeats=latency_repeats, gpu=gpu, threads=threads,
                                   flops_hint=(results.get((flops_from or {}).get(name)) or {}).get("flops"))
        if name == reference:
            ref_logits, r["agreement"] = logits, 1.0
        results[name] = r
    return {n: results[n] for n in models}
