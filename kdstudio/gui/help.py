"""Help › User guide (F1): docs/USER_GUIDE.md rendered in a window, with every distillation method of the catalogue.

The pages are described in the guide's prose; the methods are listed from the torch-free catalogue
(core/config/methods.py) when the guide is shown, so a new method appears without editing the guide.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from ..core.config.methods import METHODS
from ..core.resources import resources_dir

METHODS_MARK = "<!-- methods"
_KIND_NAMES = {"logit": "logit method", "feature": "feature method"}


def guide_path() -> Path:
    """The guide: kdstudio/resources/USER_GUIDE.md in a wheel, docs/USER_GUIDE.md in a source checkout."""
    shipped = resources_dir() / "USER_GUIDE.md"
    return shipped if shipped.is_file() else resources_dir().parent / "docs" / "USER_GUIDE.md"


def methods_markdown() -> str:
    """One heading per distillation method (name and kind), its formula and its parameters with their defaults."""
    out = []
    for name in METHODS.names():
        meta = METHODS.meta(name)
        params = ", ".join(f"`{p}` = {v}" for p, v in meta.get("params", {}).items()) or "none"
        out.append(f"### {name} ({_KIND_NAMES.get(meta.get('kind'), meta.get('kind'))})\n\n{meta.get('doc', '')}\n\n"
                   f"Parameters: {params}." + (f" Needs batches of at least {meta['min_batch']} samples."
                                               if meta.get("min_batch", 1) > 1 else ""))
    return "\n\n".join(out)


def guide_markdown() -> str:
    """The guide's Markdown with the methods filled in (a missing file says so, in the guide's place)."""
    path = guide_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        text = (f"# KD Studio user guide\n\nThe guide file {path} cannot be read ({e.strerror or e}); reinstall "
                f"KD Studio to get it back.\n\n## Distillation methods\n\n{METHODS_MARK} -->\n")
    lines = text.splitlines()
    return "\n".join(methods_markdown() if line.startswith(METHODS_MARK) else line for line in lines) + "\n"


class GuideDialog(QDialog):
    """A window beside the main one (not modal) with the guide; links to the web open in the browser."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("KD Studio user guide")
        self.setObjectName("userGuide")
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.setMarkdown(guide_markdown())
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.close)
        col = QVBoxLayout(self)
        col.addWidget(self.browser, 1)
        col.addWidget(buttons)
        self.resize(760, 720)

    def headings(self) -> list[str]:
        """The text of every heading in the rendered guide (for tests and for the reader's outline)."""
        out, block = [], self.browser.document().begin()
        while block.isValid():
            if block.blockFormat().headingLevel() > 0:
                out.append(block.text())
            block = block.next()
        return out


def guide_action(window: QWidget) -> QAction:
    """Help › User guide (F1): shows the one guide window, raised if it is already open."""
    def show() -> None:
        dialog = window.findChild(GuideDialog)
        if dialog is None:
            dialog = GuideDialog(window)
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
    return QAction("User guide", window, shortcut=QKeySequence.HelpContents, triggered=show)
