"""The window's pages: which there are, what each edits, and building each the first time it is needed.

A tab holds a PageSlot, which builds its page the first time it is shown (or asked for), so opening the window
builds only the page on screen. Each page reads the model's (and the info hub's, and the run controller's) current
state when it is built, as it may be built long after the project was opened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from PySide6.QtCore import QSize, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ..core import config as config_mod
from .pages.evaluate import EvaluatePage
from .pages.export import ExportPage
from .pages.method import MethodPage
from .pages.models import DataPage, StudentPage, TeacherPage
from .pages.train import TrainPage

PAGES = ("Data", "Teacher", "Student", "Method", "Train", "Evaluate", "Export")
OWN_SECTIONS = {"data", "teacher", "student", "distill", "baseline", "compress", "export", "evaluate", "run"}
# What each page edits: config sections and top-level keys. Sections no page names go on the Method page.
PAGE_SECTIONS = {"Data": ("data", "seed"), "Teacher": ("teacher",), "Student": ("student",),
                 "Method": ("distill", "baseline"), "Train": ("device", "run"), "Evaluate": ("evaluate",),
                 "Export": ("export", "compress")}


def extra_sections() -> list[str]:
    """Config sections no page was written for (added by other engineers); the Method page shows them."""
    return [s for s in config_mod.SECTIONS if s not in OWN_SECTIONS]


def page_keys(name: str) -> set[str]:
    """The dotted keys a page edits, known without building it (for the tabs' problem dots and goto_key)."""
    sections = PAGE_SECTIONS[name] + (tuple(extra_sections()) if name == "Method" else ())
    return {k for k in config_mod.all_keys() if k.split(".")[0] in sections}


def page_factories(model, hub, run) -> dict[str, Callable[[], QWidget]]:
    """name → a function that builds that page for this window's model, info hub and run controller."""
    return {"Data": lambda: DataPage(model, hub, run), "Teacher": lambda: TeacherPage(model, hub),
            "Student": lambda: StudentPage(model, hub), "Method": lambda: MethodPage(model, hub, extra_sections()),
            "Train": lambda: TrainPage(model, run, hub), "Evaluate": lambda: EvaluatePage(model, run),
            "Export": lambda: ExportPage(model)}


class PageSlot(QWidget):
    """A tab's place for one page; `page` is None until the page is built."""

    built = Signal(object)  # the page, once

    def __init__(self, factory: Callable[[], QWidget], parent=None):
        super().__init__(parent)
        self._factory = factory
        self.page: QWidget | None = None
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)

    def ensure(self) -> QWidget:
        """The page, built now if it was not yet."""
        if self.page is None:
            self.page = self._factory()
            self._layout.addWidget(self.page)
            if self.isVisible():
                self.page.show()  # at once: a page added to a shown slot would appear only at the next event loop
            self.built.emit(self.page)
        return self.page

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        """The first time the tab is shown: build the page."""
        self.ensure()
        super().showEvent(event)
        self.updateGeometry()  # its minimum size counts now (see minimumSizeHint)

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().hideEvent(event)
        self.updateGeometry()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        """The page's, while it is the tab on screen; nothing while another tab is. A tab stack asks for the
        largest minimum of all its pages, so the pages built so far would hold the window (and the TOML dock) to
        the Train page's width on every tab, depending on which tabs had been opened."""
        return super().minimumSizeHint() if self.isVisible() else QSize(0, 0)


class Pages(Mapping):
    """name → page, building a page the first time it is asked for; `built(name)` asks without building."""

    def __init__(self, slots: dict[str, PageSlot]):
        self.slots = slots

    def __getitem__(self, name: str) -> QWidget:
        return self.slots[name].ensure()

    def __iter__(self) -> Iterator[str]:
        return iter(self.slots)

    def __len__(self) -> int:
        return len(self.slots)

    def built(self, name: str) -> QWidget | None:
        """The page if it has been built, else None."""
        return self.slots[name].page
