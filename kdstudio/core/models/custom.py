"""Custom architectures from the user's own Python file: `arch = "path/to/file.py:factory"`.

This RUNS that file (like `python file.py` would, minus the `__main__` block), so it loads only once that file is
trusted (core/trust.py: its path and content hash; `--trust FILE` or the app's prompt). The
factory is called with whichever of `num_classes`, `input_shape`, `width`, `depth` it accepts as parameters and
must return a `torch.nn.Module`.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

from torch import nn

from .. import trust
from ..errors import ConfigError
from ..registry import nearest


def is_custom_name(arch: str) -> bool:
    """Whether `arch` looks like `some/file.py:factory`."""
    if ":" not in arch:
        return False
    file, _, factory = arch.rpartition(":")
    return file.endswith(".py") and factory.isidentifier()


def _load_module(path: Path):
    name = f"kdstudio_custom_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"'{path}' cannot be loaded as a Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up here
    no_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ beside the user's file
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - the user's code failed: say where
        sys.modules.pop(name, None)
        raise ConfigError(f"Running '{path}' failed with {type(e).__name__}: {e}. Fix that file and try again.")
    finally:
        sys.dont_write_bytecode = no_bytecode
    return module


def build_custom(arch: str, num_classes: int, input_shape: tuple, width: int = 0, depth: int = 0) -> nn.Module:
    """Run the user's file and call its factory (see the module docstring)."""
    file, _, factory = arch.rpartition(":")
    path = Path(file).expanduser()
    if not path.is_file():
        raise ConfigError(f"Custom model file '{path}' does not exist; check the path before ':{factory}'.")
    trust.require(path, "python")  # before anything imports it: opening a project must not run its file
    module = _load_module(path)
    fn = getattr(module, factory, None)
    if not callable(fn):
        found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
        near = nearest(factory, found)
        hint = f" Did you mean '{near}'?" if near else ""
        raise ConfigError(f"'{path}' has no function or class named '{factory}'"
                          + (f"; it defines {', '.join(found[:8])}.{hint}" if found else "."))
    offered = {"num_classes": num_classes, "input_shape": tuple(input_shape), "width": width, "depth": depth}
    try:
        params = inspect.signature(fn).parameters
        takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
        kwargs = {k: v for k, v in offered.items() if takes_any or k in params}
    except (TypeError, ValueError):
        kwargs = {}
    try:
        model = fn(**kwargs)
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"'{factory}' in '{path}' raised {type(e).__name__}: {e}.")
    if not isinstance(model, nn.Module):
        raise ConfigError(f"'{factory}' in '{path}' returned {type(model).__name__}, not a torch.nn.Module.")
    return model
