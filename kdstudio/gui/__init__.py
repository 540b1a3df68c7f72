"""The desktop app (PySide6 + pyqtgraph). Thin: forms, panels, plots and the QThread worker over kdstudio.core."""
