"""When an exported file counts as computing what the live model computes: the one parity rule per format and
weight type. Torch-free, so the window judges the entries of any summary.json before torch has loaded.

Float and half files are the live model's own weights in another runtime: their logits must match within a
tolerance for the number format. The torch int8 formats reload the very int8 model that was evaluated: every top-1
prediction must be the same. An int8 ONNX file is onnxruntime's own quantization of the float model (its scales
are not torch's), so logits differ where two classes nearly tie: it is judged by its top-1 agreement.
"""

from __future__ import annotations

MAX_ABS_DIFF = {"none": 1e-4, "fp16": 1e-2, "bf16": 5e-2}  # logits of the same weights in another runtime
SAME_INT8_MODEL = 1.0        # torch int8 formats: the evaluated int8 model itself, every prediction the same
REQUANTIZED_INT8 = 0.97      # int8 files quantized again by their own runtime (onnxruntime's dynamic int8)
REQUANTIZING_FORMATS = ("onnx",)


def rule(fmt: str, quantize: str | None) -> dict:
    """{"metric": "max_abs_diff", "max": tol} or {"metric": "top1_agreement", "min": share} for one export."""
    quantize = quantize or "none"
    if quantize == "int8":
        return {"metric": "top1_agreement", "min": REQUANTIZED_INT8 if fmt in REQUANTIZING_FORMATS
                else SAME_INT8_MODEL}
    return {"metric": "max_abs_diff", "max": MAX_ABS_DIFF.get(quantize, MAX_ABS_DIFF["none"])}


def check(entry: dict) -> dict:
    """The entry's rule (its own recorded "parity", else `rule`) with "ok": whether the file passes it."""
    r = dict(entry.get("parity") or rule(entry.get("format", ""), entry.get("quantize")))
    value = entry.get(r.get("metric", ""))
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return {**r, "ok": False}
    ok = value <= r["max"] if "max" in r else value >= r.get("min", 1.0)
    return {**r, "ok": bool(ok)}


def verdict(entry: dict) -> tuple[bool, str]:
    """(passes, short text): '✓ matches', '✓ agrees 99.4%', '✗ differs (max |diff| 3.1e-02 > 1e-04)',
    '✗ agrees only 95.0% (needs 97%)' or '✗ not checked'."""
    r = check(entry)
    value = entry.get(r["metric"])
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False, "✗ not checked"
    if r["metric"] == "max_abs_diff":
        return (True, "✓ matches") if r["ok"] else (False, f"✗ differs (max |diff| {value:.1e} > {r['max']:.0e})")
    if r["ok"]:
        return True, "✓ identical predictions" if value >= 1.0 else f"✓ agrees {value:.1%}"
    return False, f"✗ agrees only {value:.1%} (needs {r['min']:.0%})"
