"""`kdstudio --install-desktop-entry`: KD Studio in the desktop's application menu, for the current user (XDG).

Writes $XDG_DATA_HOME/applications/kdstudio.desktop (default ~/.local/share) and the icon under
$XDG_DATA_HOME/icons/hicolor/ (the 256 px PNG and the scalable SVG from resources/icons). Installing again rewrites
the same files (idempotent); `--uninstall-desktop-entry` removes exactly those files. No Qt, no torch.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .core.errors import KDError
from .core.resources import resources_dir
from .core.store.files import atomic_write_bytes, atomic_write_text

APP_ID = "kdstudio"
RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")
ICONS = (("kdstudio-256.png", "256x256", "kdstudio.png"), ("kdstudio.svg", "scalable", "kdstudio.svg"))


def data_home() -> Path:
    """$XDG_DATA_HOME, or ~/.local/share when it is unset or not absolute (as the XDG spec says)."""
    value = os.environ.get("XDG_DATA_HOME", "")
    return Path(value) if value and os.path.isabs(value) else Path.home() / ".local" / "share"


def desktop_file(base: Path | None = None) -> Path:
    """Where the .desktop file goes."""
    return (base or data_home()) / "applications" / f"{APP_ID}.desktop"


def icon_files(base: Path | None = None) -> list[Path]:
    """Where the icons go (hicolor theme, one per size)."""
    root = (base or data_home()) / "icons" / "hicolor"
    return [root / size / "apps" / target for _src, size, target in ICONS]


def exec_command() -> str:
    """The Exec line: the `kdstudio` script next to this Python if there is one, else `python -m kdstudio`."""
    script = Path(sys.executable).with_name("kdstudio")
    found = str(script) if script.is_file() and os.access(script, os.X_OK) else shutil.which("kdstudio")
    argv = [found] if found else [sys.executable, "-m", "kdstudio"]
    return " ".join(_quote(a) for a in argv + ["gui"])


def _quote(arg: str) -> str:
    """One Exec argument as the Desktop Entry spec wants it: '%' doubled (field codes), and an argument with a
    reserved character in double quotes with '"', '`', '$' and backslash escaped."""
    arg = arg.replace("%", "%%")
    if not any(c in arg for c in RESERVED):
        return arg
    return '"' + "".join("\\" + c if c in '"`$\\' else c for c in arg) + '"'


def desktop_text() -> str:
    """The .desktop file's content (Desktop Entry Specification 1.5)."""
    from . import __version__
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.5",
        "Name=KD Studio",
        "GenericName=Knowledge distillation workbench",
        "Comment=Distil a large model into a small one, compare it honestly, export it",
        "Exec=" + exec_command().replace("\\", "\\\\"),  # the string escape rule applies before the quoting
        f"Icon={APP_ID}",
        "Terminal=false",
        "Categories=Development;Science;ArtificialIntelligence;",
        "Keywords=distillation;pytorch;model compression;machine learning;",
        "StartupNotify=true",
        f"X-KDStudio-Version={__version__}",
        "",
    ])


def install(base: Path | None = None) -> list[Path]:
    """Write the .desktop file and the icons; returns the paths written."""
    base = base or data_home()
    written = []
    try:
        target = desktop_file(base)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, desktop_text())
        written.append(target)
        for (source, _size, _name), path in zip(ICONS, icon_files(base)):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, (resources_dir() / "icons" / source).read_bytes())
            written.append(path)
    except OSError as e:
        raise KDError(f"Cannot install the desktop entry under {base} ({e.strerror or e}); check that the folder "
                      "is writable, or set XDG_DATA_HOME to one that is.") from None
    return written


def uninstall(base: Path | None = None) -> list[Path]:
    """Remove the files `install` writes; returns those that were there."""
    removed = []
    for path in [desktop_file(base), *icon_files(base)]:
        if path.is_file():
            try:
                path.unlink()
            except OSError as e:
                raise KDError(f"Cannot remove {path} ({e.strerror or e}).") from None
            removed.append(path)
    return removed
