"""Run › Export launch script…: run.sh (torchrun on this machine's GPUs) and run.sbatch (SLURM) next to the
project's project.toml, so a run designed in the window is submitted as it is (kdstudio/launch_scripts.py)."""

from __future__ import annotations

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QInputDialog, QMessageBox, QWidget

from ..core.errors import KDError


def _gpus() -> int:
    """CUDA devices here (1 without torch loaded or without CUDA: the script's number is easy to change)."""
    import sys
    torch = sys.modules.get("torch")
    try:
        return max(1, torch.cuda.device_count()) if torch is not None else 1
    except Exception:  # noqa: BLE001 - a broken CUDA setup: 1
        return 1


def export_launch_scripts(window: QWidget, model) -> list:
    """Ask GPUs per machine and machines, save the project, write both scripts; returns their paths ([] if not)."""
    from ..launch_scripts import write
    project = getattr(model, "project", None)
    if project is None:
        QMessageBox.information(window, "Export launch script", "Open a project first: the scripts run its "
                                                                 "project.toml.")
        return []
    gpus, ok = QInputDialog.getInt(window, "Export launch script", "Processes per machine (one per GPU):",
                                   _gpus(), 1, 64)
    if not ok:
        return []
    nodes, ok = QInputDialog.getInt(window, "Export launch script", "Machines for the SLURM script (nodes):", 1, 1,
                                    1024)
    if not ok:
        return []
    try:
        model.save_now()
        paths = write(project.file, nproc=gpus, nodes=nodes)
    except (KDError, OSError) as e:
        QMessageBox.warning(window, "Export launch script", str(e))
        return []
    QMessageBox.information(window, "Export launch script",
                            "Written beside project.toml:\n" + "\n".join(str(p) for p in paths) +
                            "\n\nOn this machine: ./run.sh   On a SLURM cluster: sbatch run.sbatch")
    return paths


def launch_script_action(window: QWidget, model) -> QAction:
    """The Run menu's "Export launch script…" action."""
    return QAction("Export launch script…", window, triggered=lambda: export_launch_scripts(window, model))
