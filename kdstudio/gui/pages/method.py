"""Method page: the distillation method and its parameters (from the loss registry), optimisation, baseline.

Methods and their parameters come from `kdstudio.core.losses.available()`, so a method added to the registry shows
up here with a typed field per parameter; no GUI change needed.
"""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QFormLayout, QGroupBox, QLabel, QLineEdit

from ...core import config as config_mod
from ...core.config import methods as method_catalog
from ..forms import format_value
from ..info import InfoHub
from ..model import ConfigModel
from .base import FormPage, rest_of, section_keys
from .layer_picker import LayerPicker

SHARED = {"temperature": "distill.temperature", "alpha": "distill.alpha"}  # params that are config fields


class ParamsEditor(QGroupBox):
    """Typed fields for a method's own parameters, stored in a dict field such as distill.params."""

    def __init__(self, title: str, dict_key: str, model: ConfigModel, parent=None):
        super().__init__(title, parent)
        self.dict_key, self.model = dict_key, model
        self.method: str | None = None
        self.form = QFormLayout(self)
        self.editors: dict[str, QLineEdit | QCheckBox] = {}
        self.problem = QLabel()

    def show_method(self, method: str, params: dict) -> None:
        """Rebuild the rows for `method` (params: name → default), skipping the shared ones."""
        self.method = method
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors.clear()
        own = {k: v for k, v in params.items() if k not in SHARED}
        current = self.model.cfg.get(self.dict_key) if self.model.cfg else {}
        for name, default in own.items():
            if isinstance(default, bool):
                ed = QCheckBox()
                ed.setChecked(bool(current.get(name, default)))
                ed.toggled.connect(lambda v, n=name: self._edit(n, bool(v)))
            else:
                ed = QLineEdit(format_value(current[name]) if name in current else "")
                ed.setPlaceholderText(f"default {format_value(default)}")
                ed.editingFinished.connect(lambda n=name, e=ed, d=default: self._edit_text(n, e.text(), d))
            ed.setToolTip(f"{self.dict_key}.{name} (default {format_value(default)})")
            self.editors[name] = ed
            self.form.addRow(name.replace("_", " "), ed)
        self.problem = QLabel()
        self.problem.setObjectName("problem")
        self.problem.setWordWrap(True)
        self.problem.hide()
        self.form.addRow(self.problem)
        self.setVisible(bool(own))

    def _edit_text(self, name: str, text: str, default) -> None:
        text = text.strip()
        value = None if not text else config_mod.parse_value(text)
        self._edit(name, value)

    def _edit(self, name: str, value) -> None:
        if self.model.cfg is None:
            return
        params = dict(self.model.cfg.get(self.dict_key) or {})
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
        self.model.set(self.dict_key, params)

    def mark(self, message: str | None) -> None:
        """Show the dict field's problem."""
        self.problem.setText(message or "")
        self.problem.setVisible(bool(message))


class MethodPage(FormPage):
    """How the student learns from the teacher."""

    title = "Method"
    intro = ("The distillation loss and how the student is optimised. The baseline trains the same student from "
             "the same initial weights on labels only, so the gain from distillation is measured, not assumed.")

    def __init__(self, model: ConfigModel, hub: InfoHub, extra_sections: list[str] = (), parent=None):
        self.hub, self.extra_sections = hub, list(extra_sections)
        super().__init__(model, parent)
        hub.catalog_ready.connect(self._fill_methods)
        model.problems_changed.connect(self._mark_params)
        hub.info_ready.connect(self._show_layers)
        hub.info_failed.connect(lambda m: self._show_layers(None, m))
        if hub.catalog is not None:  # loaded before this page was built
            self._fill_methods(hub.catalog)
        if hub.info is not None:
            self._show_layers(hub.info)

    def build(self) -> None:
        self.doc = QLabel("Loading the method library…")
        self.doc.setObjectName("methodDoc")
        self.doc.setWordWrap(True)
        self.body.addWidget(self.doc)
        f = self.form
        f.add_group("Method", ["distill.method", "distill.temperature", "distill.alpha"],
                    **{"distill.method": {"choices": []}})
        self.params_box = ParamsEditor("Method parameters", "distill.params", self.model)
        self.params_box.hide()
        f.layout_.addWidget(self.params_box)
        feature = ["distill.feature_method", "distill.student_layers", "distill.teacher_layers"]
        f.add_group("Feature matching (optional)", feature, **{"distill.feature_method": {"choices": [""]}})
        self.pickers = {role: LayerPicker(role, self.model) for role in ("student", "teacher")}
        for role, picker in self.pickers.items():  # beside the list's text field, in the same row
            f.fields[f"distill.{role}_layers"].layout().itemAt(0).layout().addWidget(picker)
        self.feature_box = ParamsEditor("Feature method parameters", "distill.feature_params", self.model)
        self.feature_box.hide()
        f.layout_.addWidget(self.feature_box)
        optim = ["distill.epochs", "distill.lr", "distill.optimizer", "distill.weight_decay", "distill.scheduler",
                 "distill.mixup", "distill.amp", "distill.cache_teacher", "distill.compile", "distill.log_every"]
        f.add_group("Optimisation", optim)
        placed = ["distill.method", "distill.temperature", "distill.alpha", "distill.params",
                  "distill.feature_params"] + feature + optim
        rest = rest_of("distill", placed)
        if rest:
            f.add_group("More distillation settings", rest)
        f.add_group("Baseline", section_keys("baseline"))
        for section in self.extra_sections:
            f.add_group(f"[{section}]", section_keys(section))

    # ---- catalog-driven parts ------------------------------------------------------------------------
    def _fill_methods(self, catalog: dict) -> None:
        methods = catalog["methods"]
        docs = {n: m.get("doc", "") for n, m in methods.items()}
        self.form.fields["distill.method"].set_choices(list(methods), docs=docs)
        feats = [n for n, m in methods.items() if m.get("kind") == "feature"]
        if "distill.feature_method" in self.form.fields:
            self.form.fields["distill.feature_method"].set_choices([""] + feats, docs=docs)
        self._on_config_changed("")

    def config_changed(self, key: str) -> None:
        cat = self.hub.catalog
        cfg = self.model.cfg
        if cat is None or cfg is None:
            return
        methods = cat["methods"]
        m = methods.get(cfg.distill.method)
        if key in ("", "distill.method", "distill.params") and m is not None:
            if key == "distill.method":
                self._drop_unknown("distill.params", m["params"])
            self.doc.setText(f"<b>{cfg.distill.method}</b> — {m.get('full_doc') or m.get('doc')}")
            self.params_box.show_method(cfg.distill.method, m["params"])
            for name, dotted in SHARED.items():
                form, _ = self.form.rows[dotted]
                form.setRowVisible(self.form.fields[dotted], name in m["params"])
            self.form.fields["distill.alpha"].help.setText(method_catalog.alpha_help(cfg.distill.method))
        elif m is None and key in ("", "distill.method"):
            self.doc.setText(f"Method '{cfg.distill.method}' is not in this version's library.")
        fm = getattr(cfg.distill, "feature_method", "")
        if key in ("", "distill.feature_method", "distill.feature_params"):
            if fm in methods:
                if key == "distill.feature_method":
                    self._drop_unknown("distill.feature_params", methods[fm]["params"])
                self.feature_box.show_method(fm, methods[fm]["params"])
            else:
                self.feature_box.hide()
        self._mark_params()

    def _show_layers(self, info: dict | None, failure: str = "") -> None:
        """Fill the layer pickers from the counted models (info["<role>_summary"]["feature_layers"])."""
        for role, picker in self.pickers.items():
            summary = (info or {}).get(f"{role}_summary") or {}
            error = (info or {}).get("errors", {}).get(role) or failure
            reason = (f"No {role} layers to list: {error}" if error else
                      f"This {role} gives no layers to hook (TorchScript or ONNX give logits only).")
            picker.show_layers(summary.get("feature_layers"), reason)

    def _drop_unknown(self, dict_key: str, known: dict) -> None:
        """After a method change, keep only the parameters the new method has (so the config stays valid)."""
        current = self.model.cfg.get(dict_key) or {}
        kept = {k: v for k, v in current.items() if k in known}
        if kept != current:
            self.model.set(dict_key, kept)

    def _mark_params(self, *_):
        problems = self.model.problem_map()
        self.params_box.mark(problems.get("distill.params"))
        self.feature_box.mark(problems.get("distill.feature_params"))

    def keys(self) -> set[str]:
        return super().keys() | {"distill.params", "distill.feature_params"}
