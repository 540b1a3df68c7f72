"""`kdstudio report RUN_DIR`: the one-page HTML report, its KD-gain interval, and the page in a real browser."""

import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from kdstudio.cli import main
from kdstudio.core.outputs import gain, report
from kdstudio.core.pipeline import engine
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report-run")
    cfg = tiny_config(teacher__epochs=3, distill__epochs=3)
    cfg.evaluate.latency_repeats = 2
    summary = engine.run(cfg, out)
    return out, summary


class _Page(HTMLParser):
    """The headings, table cells and images of a page, as a browser's DOM would hold them."""

    def __init__(self):
        super().__init__()
        self.h2, self.cells, self.images, self._in = [], [], [], None

    def handle_starttag(self, tag, attrs):
        self._in = tag
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        if self._in == "h2":
            self.h2.append(data)
        elif self._in == "td":
            self.cells.append(data)

    def handle_endtag(self, tag):
        self._in = None


def test_report_holds_the_runs_numbers_in_one_file(run, capsys):
    out, summary = run
    assert main(["report", str(out)]) == 0
    path = out / report.REPORT
    assert capsys.readouterr().out.strip() == f"report written: {path}"
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    assert page.h2 == ["KD gain", "Training", "Evaluation (test split)", "Exported files", "Model card"]
    assert len(page.images) == 2 and all(src.startswith("data:image/png;base64,") for src in page.images)
    for who in ("teacher", "student", "baseline"):
        assert who in page.cells and f"{summary[who]['accuracy']:.2%}" in page.cells
    for e in summary["exports"]:
        assert f"{e['bytes']:,}" in page.cells and f"{e['max_abs_diff']:.2e}" in page.cells
    text = path.read_text(encoding="utf-8")
    assert f"KD gain: {gain.gain_sentence(summary['kd_gain_stats'])}." in text and "95 % CI" in text
    assert "[distill]" in text and not re.search(r"(src|href)=\"?https?:", text)  # nothing fetched from outside


def test_report_lists_only_the_failures_of_its_own_export_folder(run, tmp_path):
    from kdstudio.core.outputs import artifacts
    out, _ = run
    elsewhere = artifacts.export_run(out, ["safetensors"], quantize="int8", out=tmp_path / "int8", latency_repeats=0)
    assert elsewhere["failed"][0]["out"] == str(tmp_path / "int8")
    assert "safetensors not exported" not in report.build_report(out)
    assert "safetensors not exported" in (tmp_path / "int8" / "MODEL_CARD.md").read_text()


def test_the_report_says_the_gain_of_summary_json_or_measures_an_older_runs_from_evaluation_json():
    def model(wrong, listed=None):
        return {"n": 100, "top1": 1 - len(wrong) / 100, "misclassified_count": len(wrong),
                "misclassified": [{"index": i} for i in wrong][:listed]}
    stored = {"test": "paired", "gain": 0.5, "low": 0.4, "high": 0.6, "p": 0.001, "n": 10}
    assert report.run_gain(None, {"kd_gain_stats": stored}) is stored
    ev = {"models": {"student": model([1, 2]), "baseline": model([1, 3, 4, 5])}}  # before summary.json had it
    g = report.run_gain(ev, {"kd_gain": 0.02})
    assert (g["better"], g["worse"]) == (3, 1) and g["p"] == pytest.approx(0.625)
    ev["models"]["baseline"] = model([1, 3, 4, 5], listed=2)  # evaluation.json cut the list short: not measured
    assert report.run_gain(ev, {"kd_gain": 0.02}) is None


def test_report_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a KD Studio run folder" in err and err.count("\n") == 1
    assert not (tmp_path / report.REPORT).exists()
    (tmp_path / "sweep.json").write_text("{}")
    (tmp_path / "t-2" / "seed-0").mkdir(parents=True)
    (tmp_path / "t-2" / "seed-0" / "config.toml").write_text("")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a sweep folder" in err and str(tmp_path / "t-2" / "seed-0") in err


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="no Chromium here (apt-get install chromium)")
def test_report_renders_in_headless_chromium(run, tmp_path):
    """A real browser lays the page out: the screenshot shows text, the tables' grid and the confusion matrix's
    dark blue diagonal, so the inlined images decoded."""
    import numpy as np
    from PIL import Image
    out, _ = run
    path = report.write_report(out, tmp_path / "mail.html")
    shot = tmp_path / "shot.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--window-size=1200,2600", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
           path.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "Chromium wrote no screenshot"
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 2600)
    a = np.asarray(img).astype(int)
    ink = float((a.max(axis=2) < 120).mean())
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    dark_blue = int(((r < 40) & (g < 80) & (b > 90) & (b < 140)).sum())
    assert 0.002 < ink < 0.5 and dark_blue > 2000, (ink, dark_blue)
    dom = subprocess.run([*cmd[:-2], "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120)
    assert re.search(r"<h2>Model card</h2>", dom.stdout)
