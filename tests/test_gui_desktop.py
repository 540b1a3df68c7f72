"""What a desktop user expects: light and dark colours, Space to pause, progress in the title, a notice when a run
ends, the user guide on F1, the GPU figure (hidden without CUDA) and the XDG desktop entry."""

import configparser
import re

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QPalette  # noqa: E402
from PySide6.QtWidgets import QApplication, QLineEdit, QToolButton  # noqa: E402

from kdstudio.gui import theme  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402

RUN_TIMEOUT_MS = 120_000


def menu_action(window, *path):
    """The action at a menu path of the menu bar, e.g. ("&View", "Colours", "Dark")."""
    actions = window.menuBar().actions()
    for i, name in enumerate(path):
        [act] = [a for a in actions if a.text() == name]
        if i < len(path) - 1:
            actions = act.menu().actions()
    return act


@pytest.fixture
def scheme_restored():
    """Tests that switch the scheme leave the app in the mode it had."""
    before, scheme = theme.mode(), theme.scheme()
    yield
    # the scheme itself, not "auto": a test's stand-in OS scheme may still be patched in while this runs
    theme.apply(QApplication.instance(), scheme)
    theme._state["mode"] = before


def test_both_schemes_name_every_role_and_their_text_reads_on_their_surfaces():
    assert set(theme.LIGHT) == set(theme.DARK)
    for colours in (theme.LIGHT, theme.DARK):
        for text in ("text", "text_body", "muted", "accent", "error", "ok", "accent_soft_text"):
            for background in ("surface", "window"):
                assert theme.contrast(colours[text], colours[background]) >= 4.5, (text, background, colours[text])
    qss = (theme.resources_dir() / "style" / "kdstudio.qss").read_text()
    assert not re.search(r"#[0-9a-fA-F]{3,8}\b", qss), "a colour written into the stylesheet skips the dark scheme"
    for name in theme.SCHEMES:
        filled = re.sub(r"/\*.*?\*/", "", theme.stylesheet(name), flags=re.S)
        assert "$" not in filled and theme.COLOURS[name]["surface"] in filled


def test_env_and_settings_choose_the_scheme(monkeypatch):
    monkeypatch.delenv(theme.ENV, raising=False)
    assert theme.requested(None) == "auto" and theme.requested("dark") == "dark"
    monkeypatch.setenv(theme.ENV, "Light")
    assert theme.requested("dark") == "light"  # the environment wins over the settings file
    monkeypatch.setenv(theme.ENV, "purple")
    assert theme.requested(None) == "auto"
    assert theme.resolve("dark") == "dark" and theme.resolve("auto") in theme.SCHEMES


def test_view_colours_dark_repaints_the_window_plots_and_log(window, qtbot, scheme_restored):
    window.show_page("Train")
    menu_action(window, "&View", "Colours", "Dark").trigger()
    assert theme.is_dark() and window.settings.get("theme") == "dark"
    pal = QApplication.instance().palette()
    assert pal.color(QPalette.Window).lightness() < 80 and pal.color(QPalette.Text).lightness() > 180
    plot = window.train.plots.plots["loss"]
    assert plot.backgroundBrush().color().lightness() < 80
    assert plot.getPlotItem().getAxis("left").textPen().color().lightness() > 150
    window.train.log_pane.append("a plain line")
    html = window.train.live_log.document().toHtml()
    assert "a plain line" in html and "#202124" not in html  # no light-scheme text colour baked into the log
    menu_action(window, "&View", "Colours", "Light").trigger()
    assert not theme.is_dark() and plot.backgroundBrush().color().lightness() > 240


def test_auto_follows_the_os_scheme_live(window, qtbot, monkeypatch, scheme_restored):
    theme.apply(QApplication.instance(), "auto")
    window.show_page("Evaluate")
    monkeypatch.setattr(theme, "system_scheme", lambda: "dark")  # the offscreen platform reports no scheme
    QApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)  # as the desktop does on a switch
    assert theme.is_dark() and QApplication.instance().palette().color(QPalette.Base).lightness() < 80
    charts = window.pages["Evaluate"].charts
    assert charts.acc.backgroundBrush().color().lightness() < 80
    theme.apply(QApplication.instance(), "light")  # a forced scheme no longer follows the OS
    QApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert not theme.is_dark()


def test_space_pauses_and_resumes_a_run_but_not_while_typing(window, qtbot):
    window.panel.new_project("Tiny")
    window.model.replace(tiny_config(**{"teacher.epochs": 400, "distill.log_every": 1}))
    window.model.save_now()
    window.show_page("Train")
    run = window.run
    [start] = [b for b in window.train.controls.findChildren(QToolButton) if b.defaultAction() is run.start_act]
    qtbot.mouseClick(start, Qt.LeftButton)
    qtbot.waitUntil(lambda: run.live is not None and run.live.progress.stage == "teacher", timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: "%" in window.windowTitle(), timeout=RUN_TIMEOUT_MS)
    assert re.match(r"\d+ % · Training the teacher · Tiny — KD Studio$", window.windowTitle()), window.windowTitle()
    window.activateWindow()
    window.setFocus()
    qtbot.keyClick(window, Qt.Key_Space)
    assert run.state == "paused" and "(paused)" in window.windowTitle()
    field = QLineEdit(window.train)  # any text field: Space types a space there
    field.show()
    field.setFocus()
    qtbot.keyClick(field, Qt.Key_Space)
    assert run.state == "paused" and field.text() == " "
    field.deleteLater()
    window.setFocus()
    qtbot.keyClick(window, Qt.Key_Space)
    assert run.state == "running"
    with qtbot.waitSignal(run.finished, timeout=RUN_TIMEOUT_MS):
        run.stop_act.trigger()
    assert window.windowTitle() == "Tiny — KD Studio"  # progress leaves the title when the run has ended
    title, body = window.desktop.last_notice
    assert title == "KD Studio: the run stopped" and "resumed" in body
    assert "run stopped" in window.statusBar().currentMessage()
    qtbot.keyClick(window, Qt.Key_Space)  # no run: Space does nothing
    assert run.state == "idle"


def test_a_run_ending_in_the_background_notifies_through_the_tray_or_an_alert(window, monkeypatch):
    from PySide6.QtWidgets import QSystemTrayIcon
    monkeypatch.setattr(window, "isActiveWindow", lambda: False)
    alerts, shown = [], []
    monkeypatch.setattr(QApplication, "alert", staticmethod(lambda w, ms=0: alerts.append(w)))
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: False))
    window.desktop.notify_ended({"status": "completed", "student": {"accuracy": 0.973}}, None)
    assert alerts == [window] and window.desktop.tray is None
    assert window.statusBar().currentMessage() == "The run completed. Student test accuracy 97.3%."
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))
    monkeypatch.setattr(QSystemTrayIcon, "supportsMessages", staticmethod(lambda: True))
    monkeypatch.setattr(QSystemTrayIcon, "showMessage", lambda self, *a: shown.append(a[:2]))
    window.desktop.notify_ended({}, "CUDA out of memory; lower data.batch_size.")
    assert shown == [("KD Studio: the run failed", "CUDA out of memory; lower data.batch_size.")]
    assert len(alerts) == 2
    window.desktop.tray.hide()


def test_task_bar_progress_is_sent_only_when_the_percent_changes():
    from kdstudio.gui.desktop import LauncherProgress, title_progress
    launcher = LauncherProgress()
    launcher.set(0.37)
    assert launcher.last == 37
    sent = launcher.sent  # 0 without a session bus (here), 1 with one
    launcher.set(0.371)
    assert launcher.sent == sent and launcher.last == 37
    launcher.set(None)
    assert launcher.last is None
    assert title_progress(37, "distill") == "37 % · Distilling"
    assert title_progress(5, None, paused=True) == "5 % · Starting (paused)"


def test_f1_and_help_open_the_guide_with_every_page_and_method(window, qtbot):
    from kdstudio.core.config.methods import METHODS
    from kdstudio.gui.help import GuideDialog
    from kdstudio.gui.page_slots import PAGES
    guide = menu_action(window, "&Help", "User guide")
    qtbot.keyClick(window, Qt.Key_F1)
    dialog = window.findChild(GuideDialog)
    assert dialog is not None and dialog.isVisible()
    headings = dialog.headings()
    for page in PAGES:
        assert page in headings, page
    for name in METHODS.names():
        assert any(h.startswith(f"{name} (") for h in headings), name
    assert "temperature" in dialog.browser.toPlainText()
    guide.trigger()  # Help › User guide, a second time: the same window, raised
    assert len(window.findChildren(GuideDialog)) == 1
    dialog.close()


def test_gpu_figure_formats_fake_numbers_and_stays_hidden_without_cuda(window):
    from kdstudio.gui.status_gpu import format_gpu, sample_gpu
    text, tip = format_gpu({"name": "NVIDIA H200", "used": 12.3 * 1024 ** 3, "total": 140 * 1024 ** 3,
                            "util": 37.4, "allocated": 2 * 1024 ** 3, "nvml": True, "index": 0})
    assert text == "H200 · 12.3/140 GiB · 37 %"
    assert "2.00 GiB" in tip and "9%" in tip
    text, tip = format_gpu({"name": "Tesla T4", "used": 1024 ** 3, "total": 16 * 1024 ** 3, "index": 1})
    assert text == "Tesla T4 · 1.0/16 GiB" and "nvidia-ml-py" in tip
    window.desktop.gpu.start({"device": "CPU"})
    assert window.desktop.gpu.isHidden() and not window.desktop.gpu.timer.isActive()
    import torch
    if not torch.cuda.is_available():
        assert sample_gpu() is None


def test_gpu_sample_without_nvml_reads_torch_once_cuda_is_initialised(window, monkeypatch):
    import sys
    from types import SimpleNamespace

    from kdstudio.gui import status_gpu
    gib = 1024 ** 3
    cuda = SimpleNamespace(is_available=lambda: True, is_initialized=lambda: True,
                           memory_allocated=lambda i: 3 * gib, mem_get_info=lambda i: (100 * gib, 140 * gib),
                           get_device_name=lambda i: "NVIDIA H200")
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    monkeypatch.setattr(status_gpu, "_nvml", lambda index: None)
    sample = status_gpu.sample_gpu()
    assert sample == {"index": 0, "allocated": 3 * gib, "used": 40 * gib, "total": 140 * gib, "name": "NVIDIA H200"}
    label = window.desktop.gpu
    label.show_sample(sample)
    assert not label.isHidden() and label.text() == "H200 · 40.0/140 GiB"
    cuda.is_initialized = lambda: False  # before a run, torch would create a CUDA context just to answer
    assert status_gpu.sample_gpu() is None
    label.show_sample(None)
    assert label.isHidden()


def test_desktop_entry_installs_idempotently_and_uninstalls(tmp_path, monkeypatch, capsys):
    from kdstudio import cli
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert cli.main(["--install-desktop-entry"]) == 0
    first = (tmp_path / "applications" / "kdstudio.desktop").read_text()
    assert cli.main(["--install-desktop-entry"]) == 0
    assert (tmp_path / "applications" / "kdstudio.desktop").read_text() == first
    out = capsys.readouterr().out
    assert str(tmp_path / "applications" / "kdstudio.desktop") in out
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(first)
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Name"] == "KD Studio" and entry["Icon"] == "kdstudio"
    assert entry["Exec"].endswith(" gui") and entry["Terminal"] == "false"
    assert all(c.strip() for c in entry["Categories"].rstrip(";").split(";"))
    png = tmp_path / "icons" / "hicolor" / "256x256" / "apps" / "kdstudio.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "icons" / "hicolor" / "scalable" / "apps" / "kdstudio.svg").is_file()
    assert cli.main(["--uninstall-desktop-entry"]) == 0
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
    from kdstudio.desktop_entry import _quote
    assert _quote("/home/a b/kd$") == '"/home/a b/kd\\$"' and _quote("50%") == "50%%"
