"""A scrolling page with a title, an intro line and a schema-driven form bound to the ConfigModel."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from ...core import config as config_mod
from ..forms import ConfigForm
from ..model import ConfigModel


class FormPage(QScrollArea):
    """Base of the settings pages: `self.body` is a column; `self.form` edits the config."""

    title = ""
    intro = ""
    form_first = False  # True: the form comes before what build() adds to the body

    def __init__(self, model: ConfigModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        inner = QWidget()
        inner.setObjectName("page")
        inner.setMaximumWidth(1080)
        self.body = QVBoxLayout(inner)
        self.body.setContentsMargins(18, 14, 18, 14)
        self.body.setSpacing(10)
        head = QLabel(self.title)
        head.setObjectName("pageTitle")
        self.body.addWidget(head)
        if self.intro:
            intro = QLabel(self.intro)
            intro.setObjectName("pageIntro")
            intro.setWordWrap(True)
            self.body.addWidget(intro)
        self.form = ConfigForm(model.set, model.set_local_error)
        self.extra_forms: list[ConfigForm] = []  # more forms placed by build() (loaded and marked like self.form)
        if self.form_first:
            self.body.addWidget(self.form)
        self.build()
        if not self.form_first:
            self.body.addWidget(self.form)
        self.after_form()
        self.body.addStretch(1)
        self.setWidget(inner)
        model.config_changed.connect(self._on_config_changed)
        model.problems_changed.connect(lambda _p: self._mark())
        model.project_changed.connect(lambda _p: self.setEnabled(self.model.cfg is not None))
        # built when first shown, maybe long after the project was opened: start from the model's state
        self.setEnabled(model.cfg is not None)
        self._on_config_changed("")
        self._mark()

    def _mark(self) -> None:
        for f in self.forms():
            f.mark(self.model.problem_map())

    def forms(self) -> list[ConfigForm]:
        """self.form and the extra forms."""
        return [self.form] + self.extra_forms

    def extra_form(self) -> ConfigForm:
        """A further form bound to the model (add it to self.body where it belongs)."""
        f = ConfigForm(self.model.set, self.model.set_local_error, label_column=self.form.label_column)
        self.extra_forms.append(f)
        return f

    def build(self) -> None:
        """Add groups to self.form (and widgets to self.body before it)."""

    def after_form(self) -> None:
        """Add widgets to self.body after the form."""

    def _on_config_changed(self, key: str) -> None:
        if self.model.cfg is not None:
            for f in self.forms():
                f.load(self.model.cfg)
            self.config_changed(key)

    def config_changed(self, key: str) -> None:
        """Hook for pages that show derived information."""

    def keys(self) -> set[str]:
        """Dotted keys edited on this page (for the problem markers on the tabs)."""
        return {k for f in self.forms() for k in f.fields}

    def focus_key(self, key: str) -> None:
        """Scroll to a field and focus it."""
        f = next((f.fields[key] for f in self.forms() if key in f.fields), None)
        if f is not None:
            self.ensureWidgetVisible(f)
            f.editor.setFocus(Qt.OtherFocusReason)


def section_keys(section: str) -> list[str]:
    """Every dotted key of a config section, in schema order."""
    return [k for k in config_mod.all_keys() if k.startswith(section + ".")]


def rest_of(section: str, placed: list[str]) -> list[str]:
    """Keys of `section` not already placed (fields other engineers add show up without GUI changes)."""
    return [k for k in section_keys(section) if k not in placed]
