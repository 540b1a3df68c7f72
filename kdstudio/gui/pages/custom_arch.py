"""A dropped Python file as a custom architecture (`file.py:factory`, see core/models/custom.py), Qt-free.

The file is only parsed here, never run: running it is what building the model does, later, as for any custom arch.
A candidate factory is a top-level public function that can be called with what the zoo offers a factory
(`num_classes`, `input_shape`, `width`, `depth`: no other parameter without a default); when the file has no such
function, its top-level public classes that derive from a `...Module` are the candidates.
"""

from __future__ import annotations

import ast
from pathlib import Path

OFFERED = {"num_classes", "input_shape", "width", "depth"}
NOT_FACTORIES = {"main"}
CONVENTIONAL = ("make", "build", "make_model", "build_model", "create_model", "get_model", "student", "model")


class NotAModelFile(Exception):
    """The file cannot be used as a custom architecture; the message is one sentence for the user."""


def _required(args: ast.arguments, skip_self: bool = False) -> set[str]:
    positional = args.posonlyargs + args.args
    if skip_self:
        positional = positional[1:]
    without_default = positional[:len(positional) - len(args.defaults)]
    kwonly = [a for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    return {a.arg for a in without_default + kwonly}


def _is_module_class(node: ast.ClassDef) -> bool:
    return any((isinstance(b, ast.Name) and b.id.endswith("Module"))
               or (isinstance(b, ast.Attribute) and b.attr.endswith("Module")) for b in node.bases)


def _init_args(node: ast.ClassDef) -> ast.arguments | None:
    return next((f.args for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)


def factory_candidates(path: str | Path) -> list[str]:
    """Names in the file that could build the model, conventional names ('make', 'build', ...) first."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise NotAModelFile(f"'{path.name}' cannot be read ({getattr(e, 'strerror', None) or e}).") from None
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        raise NotAModelFile(f"'{path.name}' is not valid Python (line {e.lineno}: {e.msg}); fix it and drop it "
                            "again.") from None
    public = [n for n in tree.body if not getattr(n, "name", "_").startswith("_")]
    functions = [n.name for n in public if isinstance(n, ast.FunctionDef) and n.name not in NOT_FACTORIES
                 and _required(n.args) <= OFFERED]
    classes = [n.name for n in public if isinstance(n, ast.ClassDef) and _is_module_class(n)
               and (_init_args(n) is None or _required(_init_args(n), skip_self=True) <= OFFERED)]
    found = functions or classes
    rank = {name: i for i, name in enumerate(CONVENTIONAL)}
    return sorted(found, key=lambda name: rank.get(name, len(rank)))


def arch_name(path: str | Path, factory: str) -> str:
    """The config value for a custom architecture: '/abs/path/file.py:factory'."""
    return f"{Path(path).expanduser().resolve()}:{factory}"
