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
        if self.form_first:
            self.body.addWidget(self.form)
        self.build()
        if not self.form_first:
            self.body.addWidget(self.form)
        self.body.addStretch(1)
        self.setWidget(inner)
        model.config_changed.connect(self._on_config_changed)
        model.problems_changed.connect(lambda _p: self.form.mark(self.model.problem_map()))
        model.project_changed.connect(lambda _p: self.setEnabled(self.model.cfg is not None))

    def build(self) -> None:
        """Add groups to self.form (and widgets to self.body before it)."""

    def _on_config_changed(self, key: str) -> None:
        if self.model.cfg is not None:
            self.form.load(self.model.cfg)
            self.config_changed(key)

    def config_changed(self, key: str) -> None:
        """Hook for pages that show derived information."""

    def keys(self) -> set[str]:
        """Dotted keys edited on this page (for the problem markers on the tabs)."""
        return set(self.form.fields)

    def focus_key(self, key: str) -> None:
        """Scroll to a field and focus it."""
        f = self.form.fields.get(key)
        if f is not None:
            self.ensureWidgetVisible(f)
            f.editor.setFocus(Qt.OtherFocusReason)


def section_keys(section: str) -> list[str]:
    """Every dotted key of a config section, in schema order."""
    return [k for k in config_mod.all_keys() if k.startswith(section + ".")]


def rest_of(section: str, placed: list[str]) -> list[str]:
    """Keys of `section` not already placed (fields other engineers add show up without GUI changes)."""
    return [k for k in section_keys(section) if k not in placed]
