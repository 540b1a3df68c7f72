"""The model card beside the exports: MODEL_CARD.md + model_card.json, loss curves and confusion matrix as PNG.

It is written from the run's summary (the same numbers as summary.json, never recomputed), its metrics.jsonl
(loss curves), evaluation.json (confusion matrix) and the resolved config.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from ..errors import KDError
from ..store.files import RunDir, atomic_write_bytes, atomic_write_json, atomic_write_text, read_json, read_metrics
from .charts import GRID, LOSS_SIZE, Canvas, heatmap, line_chart
from .gain import gain_sentence

MARKDOWN, JSON, LOSS_PNG, CONFUSION_PNG = "MODEL_CARD.md", "model_card.json", "loss_curves.png", "confusion_matrix.png"


def load_snippet(fmt: str, file: str, config_file: str) -> str:
    """A short Python snippet that loads one exported file and runs it on a batch `x`."""
    build = (f"info = json.load(open(\"{config_file}\"))\n"
             "model = models.build(info[\"arch\"], info[\"num_classes\"], tuple(info[\"input_shape\"]),\n"
             "                     info[\"width\"], info[\"depth\"])\n"
             "if info.get(\"channel_plan\"):\n"
             "    apply_plan(model, info[\"channel_plan\"])\n")
    head = ("import json, torch\nfrom kdstudio.core import models\n"
            "from kdstudio.core.outputs.channel_prune import apply_plan\n")
    return {
        "torchscript": f"import torch\nmodel = torch.jit.load(\"{file}\")\nlogits = model(x)",
        "onnx": f"import onnxruntime as ort\nsession = ort.InferenceSession(\"{file}\")\n"
                f"logits = session.run(None, {{\"input\": x.numpy()}})[0]",
        "safetensors": f"{head}from safetensors.torch import load_model\n{build}"
                       f"load_model(model, \"{file}\")\nlogits = model.eval()(x)",
        "torch_export": f"import torch\nprogram = torch.export.load(\"{file}\")\nlogits = program.module()(x)",
        "openvino": f"import openvino as ov\ncompiled = ov.Core().compile_model(\"{file}\", \"CPU\", "
                    "{\"INFERENCE_PRECISION_HINT\": \"f32\"})\n"
                    "logits = compiled(x.numpy())[0]",
        "executorch": f"from executorch.runtime import Runtime\n"
                      f"method = Runtime.get().load_program(\"{file}\").load_method(\"forward\")\n"
                      "logits = method.execute([x])[0]",
        "state_dict": f"{head}{build}model.load_state_dict(torch.load(\"{file}\", weights_only=True))\n"
                      "logits = model.eval()(x)",
    }[fmt]


def _pct(v) -> str:
    return "–" if v is None else f"{v:.2%}"


def _num(v, fmt: str = ",") -> str:
    return "–" if v is None else format(v, fmt)


def _ms(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def _ratio(v) -> str:
    return "–" if v is None else f"{v:.1f}x"


def metrics_table(rows: list[dict]) -> list[str]:
    """Markdown lines of the comparison table (one row per evaluated model)."""
    out = ["| model | top-1 | top-5 | ECE | agreement with teacher | non-zero params | FLOPs | size (bytes) | CPU b1 ms | "
           "CPU b64 ms | speed-up b1 (teacher ÷ model) | size: teacher ÷ model |", "|" + "---|" * 12]
    for r in rows:
        lat, sp = r.get("latency_ms", {}), r.get("speedup", {})
        out.append(f"| {r['model']} | {_pct(r['top1'])} | {_pct(r.get('top5'))} | {_num(r.get('ece'), '.4f')} | "
                   f"{_pct(r.get('agreement'))} | {_num(r.get('nonzero_params') or r.get('params'))} | "
                   f"{_num(r.get('flops'))} | {_num(r.get('bytes'))} | {_ms(lat.get('cpu_b1'))} | "
                   f"{_ms(lat.get('cpu_b64'))} | {_ratio(sp.get('cpu_b1'))} | {_ratio(r.get('size_ratio'))} |")
    return out


def exports_table(exports: list[dict]) -> list[str]:
    """Markdown lines of the exports table: file, size, parity and latency in each runtime."""
    out = ["| format | file | bytes | max abs diff | top-1 agreement | runtime | CPU b1 ms | CPU b64 ms |",
           "|" + "---|" * 8]
    for e in exports:
        lat = e.get("latency_ms", {})
        out.append(f"| {e['format']}{' ' + e['quantize'] if e.get('quantize') not in (None, 'none') else ''} | "
                   f"`{Path(e['path']).name}` | {e['bytes']:,} | {e['max_abs_diff']:.2e} | "
                   f"{_pct(e['top1_agreement'])} | {e.get('runtime', '')} | {_ms(lat.get('cpu_b1'))} | "
                   f"{_ms(lat.get('cpu_b64'))} |")
    return out


def loss_series(records: list[dict]) -> tuple[list, list]:
    """(loss series, val-accuracy series) per training stage from metrics.jsonl epoch records."""
    runs: list[tuple[str, dict]] = []
    for r in records:
        if r.get("kind") != "epoch":
            continue
        if not runs or runs[-1][0] != r["stage"] or r["epoch"] <= max(runs[-1][1], default=0) and \
                r["epoch"] == 1:
            runs.append((r["stage"], {}))
        runs[-1][1][r["epoch"]] = r
    counts: dict[str, int] = {}
    loss, acc = [], []
    for stage, by_epoch in runs:
        counts[stage] = counts.get(stage, 0) + 1
        label = stage if counts[stage] == 1 else f"{stage} {counts[stage]}"
        epochs = sorted(by_epoch)
        loss.append((label, epochs, [by_epoch[e].get("total") for e in epochs]))
        acc.append((label, epochs, [by_epoch[e].get("val_acc") for e in epochs]))
    return loss, acc


def loss_png(rd: RunDir) -> bytes | None:
    """The loss and validation-accuracy curves per epoch of every training stage as PNG (None without epochs)."""
    loss, acc = loss_series(read_metrics(rd.metrics))
    if not loss:
        return None
    c = Canvas(LOSS_SIZE)
    w, h = LOSS_SIZE
    line_chart(c, (0, 0, w, h // 2), loss, "Training loss per epoch", "loss")
    c.line([(16, h // 2), (w - 16, h // 2)], GRID)
    line_chart(c, (0, h // 2, w, h), acc, "Validation accuracy per epoch", "accuracy", percent=True)
    return c.png()


def draw_images(rd: RunDir, out_dir: Path, model: str = "student") -> tuple[list[str], list[str]]:
    """Write loss_curves.png and confusion_matrix.png; returns (written file names, notes on what was skipped)."""
    written, notes = [], []
    png = loss_png(rd)
    if png:
        atomic_write_bytes(out_dir / LOSS_PNG, png)
        written.append(LOSS_PNG)
    else:
        notes.append("no epoch metrics in metrics.jsonl, so no loss-curve image")
    ev = read_json(rd.evaluation)
    if ev and model in ev.get("models", {}):
        atomic_write_bytes(out_dir / CONFUSION_PNG, heatmap(ev["models"][model]["confusion"], ev["class_names"],
                                                            f"Confusion matrix: {model} on the test split"))
        written.append(CONFUSION_PNG)
    else:
        notes.append("no evaluation.json, so no confusion-matrix image (run `kdstudio eval RUN_DIR`)")
    return written, notes


def build_card(summary: dict, cfg, images: list[str], notes: list[str], out_dir: Path | None = None) -> dict:
    """The model card as plain data (what model_card.json holds); it lists the exports that lie in out_dir."""
    from ... import __version__
    from ..config import dumps
    d = cfg.distill
    exports = [e for e in summary.get("exports", [])
               if out_dir is None or Path(e["path"]).parent.resolve() == Path(out_dir).resolve()]
    return {
        "kdstudio_version": __version__,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "data": {"source": cfg.data.source, "path": cfg.data.path, "test_samples":
                 next((r["n"] for r in (summary.get("evaluation") or {}).get("table", [])), None)},
        "teacher": summary.get("teacher"), "student": summary.get("student"), "baseline": summary.get("baseline"),
        "method": {"name": d.method, "temperature": d.temperature, "alpha": d.alpha, "epochs": d.epochs,
                   "lr": d.lr, "optimizer": d.optimizer, "params": dict(d.params)},
        "distill": summary.get("distill"), "compression": summary.get("compression"),
        "kd_gain": summary.get("kd_gain"), "kd_gain_stats": summary.get("kd_gain_stats"), "metrics": (summary.get("evaluation") or {}).get("table", []),
        "variants": (summary.get("compress") or {}).get("variants", []),
        "exports": exports, "export_failed": [f for f in summary.get("export_failed", []) if out_dir is None
                                              or "out" not in f or Path(f["out"]).resolve() == Path(out_dir).resolve()],
        "how_to_load": {e["format"]: load_snippet(e["format"], Path(e["path"]).name,
                                                  Path(e.get("config") or "student.arch.json").name)
                        for e in exports},
        "images": images, "notes": notes, "config": cfg.to_dict(), "config_toml": dumps(cfg),
    }


def render_markdown(card: dict) -> str:
    """MODEL_CARD.md text from the card data."""
    t, s, b = card["teacher"] or {}, card["student"] or {}, card["baseline"]
    m = card["method"]
    lines = [f"# Model card: {s.get('arch', '?')} student distilled from {t.get('arch', '?')}", "",
             f"Made with KD Studio {card['kdstudio_version']} on {card['created']}.", "", "## Data", "",
             f"- source: `{card['data']['source']}`" + (f" (`{card['data']['path']}`)" if card['data']['path'] else ""),
             f"- test samples: {_num(card['data']['test_samples'])}", "", "## Models", "",
             f"- teacher: `{t.get('arch')}`, {_num(t.get('params'))} parameters, test accuracy {_pct(t.get('accuracy'))}",
             f"- student: `{s.get('arch')}`, {_num(s.get('params'))} parameters, test accuracy {_pct(s.get('accuracy'))}"]
    if b:
        lines.append(f"- baseline (same student from scratch, same budget): test accuracy {_pct(b.get('accuracy'))}"
                     + (f"; KD gain {gain_sentence(card.get('kd_gain_stats'), card['kd_gain'])}"
                        if card.get("kd_gain") is not None else ""))
    lines += ["", "## Method", "", f"`{m['name']}`, temperature {m['temperature']:g}, alpha {m['alpha']:g}, "
              f"{m['epochs']} epochs at lr {m['lr']:g} ({m['optimizer']})"
              + (f", parameters {m['params']}" if m["params"] else "") + ".", ""]
    if card["metrics"]:
        lines += ["## Metrics (test split)", ""] + metrics_table(card["metrics"]) + [""]
        lines += ["Agreement is top-1 agreement with the teacher; ratios are against the teacher; ECE uses 15 bins; "
                  "latency is the median after warm-up.", ""]
    for v in card["variants"]:
        lines.append(f"- variant `{v['name']}` (from `{v.get('parent')}`): {v.get('step', '')}")
    if card["variants"]:
        lines.append("")
    if card["exports"]:
        lines += ["## Exported files", ""] + exports_table(card["exports"]) + [""]
    for e in card["exports"]:
        if e.get("note"):
            lines.append(f"- {e['format']}: {e['note']}.")
    for f in card["export_failed"]:
        lines.append(f"- {f['format']} not exported: {f['error']}")
    if card["images"]:
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in card["images"]] + [""]
    for n in card["notes"]:
        lines.append(f"- note: {n}")
    if card["how_to_load"]:
        lines += ["", "## How to load", "", "Inputs are normalised as `(x - mean) / std` with the mean and std of "
                  "`student.arch.json`.", ""]
        for fmt, code in card["how_to_load"].items():
            lines += [f"### {fmt}", "", "```python", code, "```", ""]
    lines += ["## Resolved config", "", "```toml", card["config_toml"].rstrip(), "```", ""]
    return "\n".join(lines)


def write_model_card(rd: RunDir | str | Path, summary: dict, cfg, out_dir: str | Path | None = None) -> dict:
    """Write MODEL_CARD.md, model_card.json and the PNGs into out_dir (default: the run's exports/); returns the
    paths and the card."""
    rd = rd if isinstance(rd, RunDir) else RunDir(rd)
    out = Path(out_dir) if out_dir else rd.exports
    try:
        out.mkdir(parents=True, exist_ok=True)
        images, notes = draw_images(rd, out)
        card = build_card(summary, cfg, images, notes, out)
        atomic_write_json(out / JSON, {k: v for k, v in card.items() if k != "config_toml"})
        atomic_write_text(out / MARKDOWN, render_markdown(card))
    except OSError as e:
        raise KDError(f"Cannot write the model card into '{out}' ({e.strerror or e}); check free space and "
                      "permissions.") from None
    return {"markdown": str(out / MARKDOWN), "json": str(out / JSON), "images": [str(out / i) for i in images],
            "card": card}
