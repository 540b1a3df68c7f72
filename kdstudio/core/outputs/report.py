"""`kdstudio report RUN_DIR`: one self-contained HTML page about a finished run that a person can mail.

Curves, the evaluation table, the confusion matrix, the KD gain with its uncertainty, the exports and the model card,
from the run folder's own files (summary.json, evaluation.json, metrics.jsonl, config.toml): nothing is recomputed
(the gain's paired test is measured from evaluation.json only for a run whose summary.json predates it). Images are inlined as data: URIs and the style sheet is in the page, so the one file is
the whole report. Torch-free.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .. import config as config_mod
from ..errors import KDError
from ..store import summary as summary_mod
from ..store.files import RunDir, atomic_write_text, read_json
from . import gain
from .charts import heatmap
from .modelcard import build_card, load_snippet, loss_png

REPORT = "report.html"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#202124;max-width:1080px;
margin:24px auto;padding:0 20px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dadce0;
padding-bottom:4px}.meta{color:#5f6368;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #dadce0;border-radius:8px;padding:10px 14px;
min-width:130px}.card b{display:block;font-size:20px}.card span{color:#5f6368;font-size:12px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border:1px solid #dadce0;padding:4px 8px;
text-align:right}th{background:#f1f3f4}td:first-child,th:first-child{text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}.figs img{max-width:520px;width:100%;
border:1px solid #dadce0}pre{background:#f8f9fa;border:1px solid #dadce0;padding:8px;overflow-x:auto;
font-size:12px}.note{color:#5f6368}.good{color:#137333}.bad{color:#a50e0e}
@media print{body{margin:0}h2{break-after:avoid}.figs img{max-width:48%}}
"""


def run_gain(evaluation: dict | None, summary: dict) -> dict | None:
    """The KD gain's paired test: the one summary.json carries, else measured from evaluation.json (a run from
    before summary.json carried it, whose evaluation lists every misclassified sample); None when neither can."""
    return summary.get("kd_gain_stats") or gain.from_metrics((evaluation or {}).get("models", {}))


def build_report(run_dir: str | Path) -> str:
    """The report of a run folder as HTML text; KDError when the folder holds no finished run."""
    rd = RunDir(run_dir)
    if (rd.root / "sweep.json").is_file():
        members = sorted(p.parent.relative_to(rd.root) for p in rd.root.glob("*/seed-*/config.toml"))
        raise KDError(f"'{rd.root}' is a sweep folder; `kdstudio report` takes one of its run folders"
                      + (f", e.g. '{rd.root / members[0]}'." if members else "."))
    if not rd.config.is_file():
        raise KDError(f"'{rd.root}' is not a KD Studio run folder (it has no config.toml); give the folder that "
                      "`kdstudio run` wrote.")
    summary_obj = summary_mod.read(rd.summary)
    if summary_obj is None:
        raise KDError(f"The run in '{rd.root}' has no summary.json yet; finish it first with `kdstudio run "
                      f"--resume --out {rd.root}`.")
    summary = summary_obj.to_json()
    cfg = config_mod.load(rd.config)
    evaluation = read_json(rd.evaluation)
    card = build_card(summary, cfg, [], [], rd.exports if rd.exports.is_dir() else None)
    t, s = card["teacher"] or {}, card["student"] or {}
    stats = run_gain(evaluation, summary)
    said = gain.gain_sentence(stats, summary.get("kd_gain"))
    verdict = {"helped": "good", "hurt": "bad"}.get(gain.verdict(stats) or "", "")
    parts = [f"<h1>{_e(s.get('arch', '?'))} student distilled from {_e(t.get('arch', '?'))}</h1>",
             f"<p class=meta>Run <code>{_e(rd.root.name)}</code> · {_e(summary.get('status', '?'))} · started "
             f"{_e(summary.get('started') or '–')}, finished {_e(summary.get('finished') or '–')} · "
             f"{_e(summary.get('device') or '')} · KD Studio {_e(card['kdstudio_version'])}</p>",
             _cards(summary, stats), "<h2>KD gain</h2>",
             f"<p class={verdict or 'plain'}>KD gain: {_e(said)}.</p>"
             + (f"<p class=note>{_e(gain.gain_detail(stats))}</p>" if stats else "")]
    parts += ["<h2>Training</h2>", _figure(loss_png(rd), "Loss and validation accuracy per epoch",
                                           "No epoch metrics in metrics.jsonl.")]
    parts += ["<h2>Evaluation (test split)</h2>", _eval_table(card["metrics"]) if card["metrics"] else
              "<p class=note>Not evaluated yet: run <code>kdstudio eval RUN_DIR</code>.</p>"]
    if evaluation and "student" in evaluation.get("models", {}):
        png = heatmap(evaluation["models"]["student"]["confusion"], evaluation["class_names"],
                      "Confusion matrix: student on the test split")
        parts.append(_figure(png, "Confusion matrix of the student (rows: true class, columns: predicted)", ""))
    parts += ["<h2>Exported files</h2>", _exports(card)]
    parts += ["<h2>Model card</h2>", _card_section(card)]
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
            "content=\"width=device-width,initial-scale=1\">"
            f"<title>KD Studio report: {_e(rd.root.name)}</title><style>{CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report (default RUN_DIR/report.html) atomically; returns its path."""
    path = Path(out) if out else Path(run_dir) / REPORT
    text = build_report(run_dir)
    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise KDError(f"Cannot write the report '{path}' ({e.strerror or e}); check free space and permissions, "
                      "or choose another --out.") from None
    return path


# ---- pieces ---------------------------------------------------------------------------------------------

def _e(v) -> str:
    return html.escape(str(v))


def _pct(v) -> str:
    return "–" if v is None else f"{v:.2%}"


def _cards(summary: dict, stats: dict | None) -> str:
    comp = summary.get("compression") or {}
    items = [(_pct((summary.get(w) or {}).get("accuracy")), f"{w} test accuracy")
             for w in ("teacher", "student", "baseline") if summary.get(w)]
    if summary.get("kd_gain") is not None:
        band = "" if not stats else f", 95 % CI {gain.pts(stats['low'])}…{gain.pts(stats['high'])}"
        items.append((f"{gain.pts(summary['kd_gain'])} pts", f"KD gain{band}"))
    for key, more, less in (("params_ratio", "fewer parameters", "more parameters"),
                            ("size_ratio", "smaller file", "larger file"),
                            ("speedup_cpu_b1", "faster, CPU batch 1", "slower, CPU batch 1")):
        said = summary_mod.ratio_said(comp.get(key), more, less)  # a bigger student is "2.1× more", never "0.5× fewer"
        if said:
            number, _, label = said.partition(" ")
            items.append((number, label))
    return "<div class=cards>" + "".join(f"<div class=card><b>{_e(v)}</b><span>{_e(k)}</span></div>"
                                         for v, k in items) + "</div>"


def _figure(png: bytes | None, alt: str, missing: str) -> str:
    if not png:
        return f"<p class=note>{_e(missing)}</p>"
    data = base64.b64encode(png).decode("ascii")
    return f"<div class=figs><img alt=\"{_e(alt)}\" title=\"{_e(alt)}\" src=\"data:image/png;base64,{data}\"></div>"


def _table(head: list[str], rows: list[list]) -> str:
    return ("<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows) + "</table>")


def _num(v, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def _eval_table(rows: list[dict]) -> str:
    head = ["model", "top-1", "top-5", "ECE", "agreement with teacher", "parameters", "size (bytes)", "CPU b1 ms",
            "CPU b64 ms", "speed-up b1", "size: teacher ÷ model"]
    body = []
    for r in rows:
        lat, sp = r.get("latency_ms") or {}, r.get("speedup") or {}
        body.append([r["model"], _pct(r.get("top1")), _pct(r.get("top5")), _num(r.get("ece"), ".4f"),
                     _pct(r.get("agreement")), _num(r.get("nonzero_params") or r.get("params"), ","),
                     _num(r.get("bytes"), ","), _num(lat.get("cpu_b1"), ".3f"), _num(lat.get("cpu_b64"), ".3f"),
                     _num(sp.get("cpu_b1"), ".1f") + ("×" if sp.get("cpu_b1") is not None else ""),
                     _num(r.get("size_ratio"), ".1f") + ("×" if r.get("size_ratio") is not None else "")])
    return _table(head, body) + ("<p class=note>Agreement is top-1 agreement with the teacher; ratios are against the "
                                 "teacher; ECE uses 15 bins; latency is the median after warm-up.</p>")


def _exports(card: dict) -> str:
    rows = []
    for e in card["exports"]:
        lat = e.get("latency_ms") or {}
        q = e.get("quantize")
        rows.append([e["format"] + ("" if q in (None, "none") else f" {q}"), Path(e["path"]).name,
                     f"{e['bytes']:,}", f"{e['max_abs_diff']:.2e}", _pct(e["top1_agreement"]), e.get("runtime", ""),
                     _num(lat.get("cpu_b1"), ".3f"), _num(lat.get("cpu_b64"), ".3f")])
    out = _table(["format", "file", "bytes", "max |diff|", "top-1 agreement", "runtime", "CPU b1 ms", "CPU b64 ms"],
                 rows) if rows else "<p class=note>No exported files in exports/.</p>"
    notes = [f"{e['format']}: {e['note']}." for e in card["exports"] if e.get("note")]
    notes += [f"{f['format']} not exported: {f['error']}" for f in card["export_failed"]]
    return out + "".join(f"<p class=note>{_e(n)}</p>" for n in notes)


def _card_section(card: dict) -> str:
    m, data = card["method"], card["data"]
    lines = [f"<p>Method <code>{_e(m['name'])}</code>, temperature {m['temperature']:g}, alpha {m['alpha']:g}, "
             f"{m['epochs']} epochs at lr {m['lr']:g} ({_e(m['optimizer'])})"
             + (f", parameters {_e(m['params'])}" if m["params"] else "") + ". Data: "
             f"<code>{_e(data['source'])}</code>" + (f" (<code>{_e(data['path'])}</code>)" if data["path"] else "")
             + ".</p>"]
    for v in card["variants"]:
        lines.append(f"<p>Variant <code>{_e(v['name'])}</code> (from <code>{_e(v.get('parent'))}</code>): "
                     f"{_e(v.get('step', ''))}</p>")
    for e in card["exports"]:
        code = load_snippet(e["format"], Path(e["path"]).name, Path(e.get("config") or "student.arch.json").name)
        lines.append(f"<details><summary>Load <code>{_e(Path(e['path']).name)}</code> ({_e(e['format'])})"
                     f"</summary><pre>{_e(code)}</pre></details>")
    lines.append(f"<details><summary>Resolved config</summary><pre>{_e(card['config_toml'].rstrip())}</pre>"
                 "</details>")
    return "\n".join(lines)
