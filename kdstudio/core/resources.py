"""Finds the shipped resources/ folder both in a source checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent.parent  # kdstudio/


def resources_dir() -> Path:
    """The resources folder: kdstudio/resources (wheel) or <repo>/resources (source checkout)."""
    for cand in (_PKG / "resources", _PKG.parent / "resources"):
        if (cand / "data" / "digits.npz").is_file():
            return cand
    raise FileNotFoundError("KD Studio's resources folder is missing; reinstall the package.")


def resource_path(rel: str) -> Path:
    """Absolute path of a file under resources/."""
    return resources_dir() / rel
