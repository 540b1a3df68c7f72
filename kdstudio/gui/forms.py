"""Form fields built from the config schema: the right editor per type, help text, and inline problems.

A `Field` edits one dotted key. Its editor comes from the field's type and metadata (bool → check box, choices →
combo box with not-yet-available choices disabled, numbers → text with live parsing, lists with choices → check
boxes, paths → text + Browse, or File… and Folder… for keys that take either). A problem is shown under the
editor in red, and the editor is outlined.
A `ConfigForm` gives all its groups one label column (`LabelColumn`), so their fields start at the same x.
"""

from __future__ import annotations

import math
from typing import Callable

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout,
                               QLabel, QLineEdit, QPushButton, QSizePolicy, QVBoxLayout, QWidget)

from ..core import config as config_mod

FOLDER_KEYS = {"data.path", "data.val_path", "data.test_path"}  # may be a folder (image folders) or a file
# A path key that may also be a folder gets File… and Folder… buttons: image folders, a Hugging Face model folder.
FOLDER_BUTTON_KEYS = {"teacher.path": "Choose a Hugging Face model folder (with config.json)"}
NUMBER_TYPES = ("int", "float")
CHECKS_PER_ROW = 4  # check boxes of a list field (export.formats has 7)


LABELS = {"lr": "Learning rate", "val_fraction": "Validation fraction", "test_fraction": "Test fraction",
          "width_mult": "Width multiplier", "depth_mult": "Depth multiplier", "amp": "Mixed precision",
          "mixup": "Mixup", "arch": "Architecture", "log_every": "Log every (steps)", "enabled": "Train a baseline",
          "cache_teacher": "Cache teacher outputs", "compile": "torch.compile", "trust_pickle": "Trust pickled model",
          "cpu_threads": "CPU threads", "finetune_lr": "Fine-tune learning rate",
          "prune_finetune_lr": "Fine-tune learning rate after pruning", "finetune_epochs": "Fine-tune epochs",
          "prune_finetune_epochs": "Fine-tune epochs after pruning", "finetune_layers": "Fine-tune layers"}


def label_for(key: str) -> str:
    """'distill.weight_decay' → 'Weight decay' (a few keys get a clearer name)."""
    last = key.split(".")[-1]
    if last in LABELS:
        return LABELS[last]
    text = last.replace("_", " ")
    return text[:1].upper() + text[1:]


def format_value(value) -> str:
    """How a value is shown in a text editor (TOML syntax for lists and tables, %g for floats)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, dict)):
        return config_mod._toml_value(value)
    return str(value)


def _type_name(f) -> str:
    return f.type if isinstance(f.type, str) else f.type.__name__


class Field(QWidget):
    """Editor + help + problem message for one dotted config key; emits `edited(key, value)`."""

    edited = Signal(str, object)
    local_error = Signal(str, str)  # key, message ("" = cleared): text that is not a value of the right type

    def __init__(self, key: str, parent=None, *, choices: list[str] | None = None, editable_choices=False):
        super().__init__(parent)
        self.key = key
        self.info = config_mod.field_info(key)
        self.kind = _type_name(self.info)
        meta = self.info.metadata
        self._loading = False
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        choices = choices if choices is not None else meta.get("choices")
        available = meta.get("available")
        self.checks: dict[str, QCheckBox] = {}
        if self.kind == "bool":
            self.editor = QCheckBox()
            self.editor.toggled.connect(lambda v: self._emit(bool(v)))
        elif self.kind == "list" and choices:
            self.editor = QWidget()
            box = QGridLayout(self.editor)
            box.setContentsMargins(0, 0, 0, 0)
            for i, c in enumerate(choices):
                cb = QCheckBox(c)
                if available and c not in available:
                    cb.setEnabled(False)
                    cb.setToolTip("not available yet in this version")
                cb.toggled.connect(lambda _=False: self._emit([c for c, b in self.checks.items() if b.isChecked()]))
                box.addWidget(cb, *divmod(i, CHECKS_PER_ROW))  # rows of a few: the form fits an 800 px window
                self.checks[c] = cb
            box.setColumnStretch(CHECKS_PER_ROW, 1)
        elif self.kind == "str" and (choices is not None or editable_choices):
            self.editor = QComboBox()
            # a list of short words ("last", "best") needs no 200 px: the form then fits a narrow page
            short = not editable_choices and choices and max(len(str(c)) for c in choices) <= 8
            self.editor.setMinimumWidth(140 if short else 200)
            self.editor.setMaximumWidth(420)
            self.editor.setEditable(editable_choices)
            self.editor.setSizeAdjustPolicy(QComboBox.AdjustToContents)
            self.set_choices(list(choices or []), available)
            if editable_choices:
                self.editor.lineEdit().editingFinished.connect(lambda: self._emit(self.editor.currentText()))
                self.editor.activated.connect(lambda _i: self._emit(self.editor.currentText()))
            else:
                self.editor.currentIndexChanged.connect(lambda _i: self._emit(self.editor.currentData()))
        else:
            self.editor = QLineEdit()
            if self.kind in NUMBER_TYPES:
                self.editor.setMaximumWidth(160)
                self.editor.textEdited.connect(self._parse_number)
            elif self.kind in ("list", "dict"):
                self.editor.setPlaceholderText("[]" if self.kind == "list" else "{ name = 1.0 }")
                self.editor.editingFinished.connect(self._parse_toml)
            else:
                self.editor.textEdited.connect(lambda t: self._emit(t))
        row.addWidget(self.editor, 1 if self.kind in ("str", "list", "dict") else 0)
        self.browse_buttons: dict[str, QPushButton] = {}
        if key.endswith("path"):
            # a key that takes a folder or a file gets a button for each: one click opens one dialog
            kinds = ("file", "folder") if key in FOLDER_KEYS or key in FOLDER_BUTTON_KEYS else ("file",)
            for kind in kinds:
                button = QPushButton("Browse…" if len(kinds) == 1 else f"{kind.capitalize()}…")
                button.setToolTip(FOLDER_BUTTON_KEYS[key] if kind == "folder" and key in FOLDER_BUTTON_KEYS
                                  else f"Choose a {kind} for {key}")
                button.clicked.connect(lambda _=False, k=kind: self._browse(k))
                row.addWidget(button)
                self.browse_buttons[kind] = button
        self.folder_button = self.browse_buttons.get("folder")
        if self.kind in NUMBER_TYPES or self.kind == "bool" or isinstance(self.editor, QComboBox):
            row.addStretch(1)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(2)
        col.addLayout(row)
        self.help = QLabel(meta.get("help") or "")
        self.help.setObjectName("help")
        self.help.setWordWrap(True)
        col.addWidget(self.help)
        self.problem = QLabel()
        self.problem.setObjectName("problem")
        self.problem.setWordWrap(True)
        self.problem.hide()
        col.addWidget(self.problem)
        self.setToolTip(f"{key}: {meta.get('help') or ''}")
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)

    # ---- values ---------------------------------------------------------------------------------------
    def set_choices(self, choices: list[str], available=None, docs: dict | None = None) -> None:
        """Replace the combo box entries (unavailable ones disabled), keeping the current value."""
        if not isinstance(self.editor, QComboBox):
            return
        current = self.editor.currentText() if self.editor.isEditable() else self.editor.currentData()
        self._loading = True
        self.editor.clear()
        for c in choices:
            text = (c or "(none)") if not available or c in available else f"{c} (not available yet)"
            self.editor.addItem(text, c)
            i = self.editor.count() - 1
            if available and c not in available:
                self.editor.model().item(i).setEnabled(False)
            if docs and docs.get(c):
                self.editor.setItemData(i, docs[c], Qt.ToolTipRole)
        self._loading = False
        if current is not None:
            self.set_value(current)

    def set_value(self, value) -> None:
        """Show `value` without emitting an edit."""
        self._loading = True
        try:
            e = self.editor
            if self.kind == "bool":
                e.setChecked(bool(value))
            elif self.checks:
                for c, cb in self.checks.items():
                    cb.setChecked(c in (value or []))
            elif isinstance(e, QComboBox):
                i = e.findData(value)
                if i < 0 and value not in (None, ""):
                    e.addItem(str(value), value)
                    i = e.count() - 1
                if e.isEditable():
                    e.setEditText(str(value))
                else:
                    e.setCurrentIndex(i)
            elif not e.hasFocus() or self.kind not in NUMBER_TYPES:
                if e.text() != format_value(value):
                    e.setText(format_value(value))
        finally:
            self._loading = False

    def set_problem(self, message: str | None) -> None:
        """Show (or clear) a problem under the editor and outline the editor in red."""
        self.problem.setText(message or "")
        self.problem.setVisible(bool(message))
        self.editor.setProperty("invalid", bool(message))
        self.editor.style().unpolish(self.editor)
        self.editor.style().polish(self.editor)

    @property
    def has_problem(self) -> bool:
        """True while a problem is shown."""
        return bool(self.problem.text())

    # ---- edits ----------------------------------------------------------------------------------------
    def _emit(self, value) -> None:
        if not self._loading:
            self.local_error.emit(self.key, "")
            self.edited.emit(self.key, value)

    def _parse_number(self, text: str) -> None:
        if self._loading:
            return
        text = text.strip().replace("_", "")
        try:
            value = int(text) if self.kind == "int" else float(text)
            if self.kind == "float" and not math.isfinite(value):
                raise ValueError
        except ValueError:
            what = "a whole number" if self.kind == "int" else "a number, like 0.001 or 1e-3"
            self.local_error.emit(self.key, f"'{self.key}' must be {what}; '{text}' is not.")
            return
        self._emit(value)

    def _parse_toml(self) -> None:
        if self._loading:
            return
        text = self.editor.text().strip() or ("[]" if self.kind == "list" else "{}")
        value = config_mod.parse_value(text)
        expected = list if self.kind == "list" else dict
        if not isinstance(value, expected):
            example = "[0, 1, 2]" if self.kind == "list" else "{ weight = 1.0 }"
            self.local_error.emit(self.key, f"'{self.key}' must be written like {example}.")
            return
        self._emit(value)

    def _browse(self, kind: str) -> None:
        """One dialog for a file or a folder; cancelling it changes nothing."""
        current = self.editor.text() if isinstance(self.editor, QLineEdit) else ""
        if kind == "folder":
            path = QFileDialog.getExistingDirectory(self, FOLDER_BUTTON_KEYS.get(self.key, f"Choose a folder for "
                                                                                           f"{self.key}"), current)
        else:
            path, _ = QFileDialog.getOpenFileName(self, f"Choose a file for {self.key}", current)
        if path and isinstance(self.editor, QLineEdit):
            self.editor.setText(path)
            self._emit(path)


class LabelColumn:
    """The row labels of one form: each is as wide as the widest (hidden rows included, so nothing moves when a
    row appears), so the fields of every group box start at the same x and the page reads as one form."""

    def __init__(self):
        self.labels: list[ColumnLabel] = []

    def label(self, text: str) -> "ColumnLabel":
        """A new label in this column (every label of the column is re-measured). Rows built again and again
        (e.g. a method's parameters) may use it too: a label deleted with its row leaves the column."""
        label = ColumnLabel(text, self)
        self.labels = [other for other in self.labels if shiboken6.isValid(other)] + [label]
        for other in self.labels:
            other.updateGeometry()
        return label

    def width(self) -> int:
        """The widest label's natural width, in pixels."""
        return max((label.natural_width() for label in self.labels if shiboken6.isValid(label)), default=0)


class ColumnLabel(QLabel):
    """A row label whose size hint has its column's width (measured with its font when the layout asks)."""

    def __init__(self, text: str, column: LabelColumn):
        super().__init__(text)
        self.column = column

    def natural_width(self) -> int:
        """The width the text itself needs."""
        return super().sizeHint().width()

    def sizeHint(self):
        size = super().sizeHint()
        size.setWidth(max(size.width(), self.column.width()))
        return size

    def minimumSizeHint(self):
        size = super().minimumSizeHint()
        size.setWidth(max(size.width(), self.column.width()))
        return size


class ConfigForm(QWidget):
    """Groups of Fields; routes edits to `on_edit(key, value)` and local errors to `on_local_error`. All groups
    share `label_column` (pass another form's to line two forms of a page up as well)."""

    def __init__(self, on_edit: Callable[[str, object], None], on_local_error: Callable[[str, str], None],
                 parent=None, label_column: LabelColumn | None = None):
        super().__init__(parent)
        self.on_edit, self.on_local_error = on_edit, on_local_error
        self.label_column = label_column or LabelColumn()
        self.fields: dict[str, Field] = {}
        self.rows: dict[str, tuple[QFormLayout, QWidget]] = {}
        self.groups: list[tuple[QGroupBox, list[str]]] = []
        self.visible_when: dict[str, Callable] = {}
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)

    def add_group(self, title: str, keys: list[str], **field_kwargs) -> QGroupBox:
        """A titled box with one row per key (keys the schema does not have are skipped)."""
        box = QGroupBox(title)
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignRight | Qt.AlignTop)
        known = set(config_mod.all_keys())
        for key in keys:
            if key in known and key not in self.fields:
                self.add_field(form, key, **field_kwargs.get(key, {}))
        self.layout_.addWidget(box)
        self.groups.append((box, [k for k in keys if k in self.fields]))
        return box

    def add_field(self, form: QFormLayout, key: str, **kwargs) -> Field:
        """One row in `form`."""
        f = Field(key, **kwargs)
        f.edited.connect(self.on_edit)
        f.local_error.connect(self.on_local_error)
        label = self.label_column.label(label_for(key))
        label.setAlignment(form.labelAlignment() & Qt.AlignHorizontal_Mask | Qt.AlignVCenter)  # text to the right
        label.setToolTip(key)
        form.addRow(label, f)
        self.fields[key] = f
        self.rows[key] = (form, label)
        return f

    def load(self, cfg) -> None:
        """Show the config's values and apply visibility rules."""
        for key, f in self.fields.items():
            f.set_value(cfg.get(key))
        self.update_visibility(cfg)

    def update_visibility(self, cfg) -> None:
        """Hide rows that do not apply (e.g. CSV options for the digits source)."""
        for key, rule in self.visible_when.items():
            if key in self.fields:
                form, _ = self.rows[key]
                form.setRowVisible(self.fields[key], bool(rule(cfg)))
        for box, keys in self.groups:  # a group whose rows are all hidden disappears too
            shown = [k for k in keys if k not in self.visible_when or self.visible_when[k](cfg)]
            box.setVisible(bool(shown))

    def mark(self, problems: dict[str, str]) -> None:
        """Show each field's problem (or clear it)."""
        for key, f in self.fields.items():
            f.set_problem(problems.get(key))
