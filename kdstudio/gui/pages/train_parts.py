"""Parts of the Train page: the run controls with the Start hint, the plot area with its empty-state
placeholder, and the log pane."""

from __future__ import annotations

import datetime as _dt
import html
import re
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QPlainTextEdit, QStackedLayout, QStackedWidget,
                               QToolButton, QVBoxLayout, QWidget)

from ...core.store.files import RunDir

from .. import status_gpu, theme
from .history import clean_log

NO_RUN_TEXT = "No run yet — press Start (Ctrl+R) to train the teacher and distil the student."


def hint_html(key: str, message: str, more: int = 0) -> str:
    """Why Start is disabled, naming the key once: the key is the link, and a message that begins with the key
    ("'teacher.epochs' = 0 is too small…") goes on after it instead of repeating it."""
    link = f"<a href='{html.escape(key)}'>{html.escape(key or 'config')}</a>"
    lead = re.match(rf"(?:'{re.escape(key)}'|{re.escape(key)})(?![\w.])", message) if key else None
    rest = message[lead.end():] if lead else f": {message}"
    tail = f" (and {more} more)" if more else ""
    return f"Start is disabled until this is fixed: {link}{html.escape(rest)}{tail}"


class RunControls(QWidget):
    """Start · Pause · Resume · Stop, the device and the Run settings button on one row, the Start hint (when
    there is one) wrapped on the row under it. Narrower than the row needs, the device label gives way (the
    device is also in the settings button's tooltip), so no button text is ever cut off."""

    processes_changed = Signal(int)  # the GPUs chosen: the processes a run starts with (1 while hidden)

    def __init__(self, start, pause, resume, stop, parent=None):
        super().__init__(parent)
        self.row = QHBoxLayout()
        self.row.setContentsMargins(0, 0, 0, 0)
        for act, name in ((start, "startButton"), (pause, ""), (resume, ""), (stop, "stopButton")):
            b = QToolButton()
            b.setDefaultAction(act)
            b.setToolButtonStyle(Qt.ToolButtonTextOnly)
            if name:
                b.setObjectName(name)
            self.row.addWidget(b)
        self.row.addStretch(1)
        self.gpus_label = QLabel("GPUs:")
        self.gpus = QComboBox()  # 1…N, shown with more than one CUDA device (set_gpu_count)
        self.gpus.addItem("1")
        self.gpus.setAccessibleName("GPUs")
        self.gpus.setToolTip("Train on this many GPUs of this machine: more than 1 starts torchrun with one process "
                             "per GPU (DDP) and the window follows the run from its folder. data.batch_size is per "
                             "process.")
        self.gpus_label.setBuddy(self.gpus)
        self.gpus.currentIndexChanged.connect(lambda _i: self.processes_changed.emit(self.gpu_choice()))
        for w in (self.gpus_label, self.gpus):
            w.hide()
            self.row.addWidget(w)
        self.device_label = QLabel()
        self.device_label.setObjectName("help")
        self.settings_btn = QToolButton()
        self.settings_btn.setText("Run settings ▾")
        self.settings_btn.setCheckable(True)
        self.settings_btn.setToolTip("Device and the [run] settings (seeds, sweeps)")
        self.row.addWidget(self.device_label)
        self.row.addWidget(self.settings_btn)
        self.hint = QLabel()
        self.hint.setObjectName("problem")
        self.hint.setWordWrap(True)
        self.hint.hide()
        self.warning = QLabel()  # what Start does not wait for but the user should know (a larger student)
        self.warning.setObjectName("warning")
        self.warning.setWordWrap(True)
        self.warning.hide()
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(4)
        col.addLayout(self.row)
        col.addWidget(self.hint)
        col.addWidget(self.warning)
        self._full_width = 0  # what the row needs with the device label shown

    def set_hint(self, text: str) -> None:
        """Show the hint under the buttons ("" hides it)."""
        self.hint.setText(text)
        self.hint.setVisible(bool(text))

    def set_warning(self, text: str) -> None:
        """Show a warning under the hint ("" hides it)."""
        self.warning.setText(f"⚠ {text}" if text else "")
        self.warning.setVisible(bool(text))

    def refresh_gpus(self) -> None:
        """Offer GPUs 1…N when this machine has N > 1 CUDA devices (status_gpu.cuda_device_count)."""
        self.set_gpu_count(status_gpu.cuda_device_count())
        self.processes_changed.emit(self.gpu_choice())

    def set_gpu_count(self, count: int) -> None:
        """Offer GPUs 1…count when there is more than one CUDA device; hidden otherwise (and back to 1)."""
        several = count > 1
        keep = min(self.gpu_choice(), max(1, count))
        self.gpus.blockSignals(True)
        self.gpus.clear()
        self.gpus.addItems([str(n) for n in range(1, max(1, count) + 1)])
        self.gpus.setCurrentIndex(keep - 1 if several else 0)
        self.gpus.blockSignals(False)
        self.gpus_label.setVisible(several)
        self.gpus.setVisible(several)
        self._full_width = 0  # the row's width changed: measured again at the next resize

    def gpu_choice(self) -> int:
        """The GPUs chosen (1 while the control is hidden)."""
        return 1 if self.gpus.isHidden() else self.gpus.currentIndex() + 1

    def set_device(self, device: str) -> None:
        self.device_label.setText(f"device: {device}")
        self.settings_btn.setToolTip(f"Device ({device}) and the [run] settings (seeds, sweeps)")

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override: the width without the device label
        hint = super().minimumSizeHint()
        if not self.device_label.isHidden():
            hint.setWidth(hint.width() - self.device_label.sizeHint().width() - self.row.spacing())
        return hint

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if not self.device_label.isHidden():
            self._full_width = self.row.minimumSize().width()
        self.device_label.setHidden(event.size().width() < self._full_width)


class PlotArea(QWidget):
    """The live plots, or in their place a centred sentence saying why there is nothing to draw."""

    def __init__(self, plots: QWidget, parent=None):
        super().__init__(parent)
        self.plots = plots
        self.placeholder = QLabel(NO_RUN_TEXT)
        self.placeholder.setObjectName("plotPlaceholder")
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.stack = QStackedLayout(self)
        self.stack.addWidget(plots)
        self.stack.addWidget(self.placeholder)
        self.stack.setCurrentWidget(self.placeholder)

    @property
    def empty(self) -> bool:
        """True while the placeholder is shown."""
        return self.stack.currentWidget() is self.placeholder

    def show_empty(self, text: str | None) -> None:
        """The placeholder with `text`, or (None) the plots."""
        if text:
            self.placeholder.setText(text)
        self.stack.setCurrentWidget(self.placeholder if text else self.plots)


class LogPane(QWidget):
    """The log: this session's messages as they come, or the log.txt of a past run selected in the history."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.live = QPlainTextEdit(readOnly=True)
        self.live.setMaximumBlockCount(5000)
        self.past = QPlainTextEdit(readOnly=True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.live)
        self.stack.addWidget(self.past)
        self.title = QLabel("Log")
        self.title.setObjectName("sectionTitle")
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(self.title)
        col.addWidget(self.stack, 1)

    def append(self, text: str, stage: str | None = None, *, warn=False, error=False, bold=False,
               quiet=False, at: float | None = None) -> None:
        """One line in this session's log, stamped with the time `at` it was said (else now), scrolled into view."""
        stamp = (_dt.datetime.fromtimestamp(at) if at is not None else _dt.datetime.now()).strftime("%H:%M:%S")
        # Plain lines take the palette's text colour, so they follow a scheme switch; marked ones keep theirs.
        color = theme.color("error" if error else "warn" if warn else "muted")
        body = html.escape(text)
        if bold:
            body = f"<b>{body}</b>"
        prefix = f"[{stage}] " if stage and not bold else ""
        self.live.appendHtml(f"<span style='color:{theme.color('dim')}'>{stamp}</span> "
                             + (f"<span style='color:{color}'>{html.escape(prefix)}{body}</span>"
                                if error or warn or quiet else f"{html.escape(prefix)}{body}"))
        bar = self.live.verticalScrollBar()
        bar.setValue(bar.maximum())

    def show_past(self, folder: Path, name: str, members: list[Path] | None = None) -> None:
        """The log.txt of a finished run; for a sweep (which has no log of its own), each member's log under a
        heading that names it."""
        if members:
            parts = []
            for m in members:
                where = Path(m).relative_to(folder) if Path(m).is_relative_to(folder) else Path(m).name
                parts.append(f"──── {where} ────\n{_read_log(Path(m))}")
            self.past.setPlainText("\n\n".join(parts))
        else:
            self.past.setPlainText(_read_log(Path(folder)))
        self.stack.setCurrentWidget(self.past)
        self.title.setText(f"Log — {name}" + (f" ({len(members)} runs)" if members else ""))

    def show_live(self) -> None:
        """This session's messages."""
        self.stack.setCurrentWidget(self.live)
        self.title.setText("Log — this session")


def _read_log(folder: Path) -> str:
    """A run folder's log.txt, cleaned, or a sentence saying there is none."""
    try:
        return clean_log(RunDir(folder).log.read_text(encoding="utf-8"))
    except OSError:
        return "(this run has no log)"
