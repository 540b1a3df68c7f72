"""One registry idiom for everything a user names in a config: methods, architectures, data sources, export formats.

    ARCHS = Registry("architecture", key="student.arch")
    ARCHS.register("mlp", build_mlp, family="mlp", width=256, depth=2)        # an object at hand
    SOURCES.register_lazy("csv", "kdstudio.core.data.csv:load_csv")           # imported on first get()

    ARCHS.get("mpl")   # ConfigError: Unknown architecture 'mpl'. Did you mean 'mlp'?

A registry owns lookup and the "did you mean …" message, so a new entry is one class and one registration line.
It imports nothing heavy (no torch), so validation can use the names before torch has loaded; entries whose
objects need torch register lazily with `register_lazy(name, "module:attr", **meta)`.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def close_names(name: str, candidates, n: int = 5, cutoff: float = 0.5) -> list[str]:
    """Up to `n` candidates close to a misspelt name, closest first (for long lists such as layer paths)."""
    return difflib.get_close_matches(str(name), [str(c) for c in candidates], n=n, cutoff=cutoff)


def nearest(name: str, candidates, cutoff: float = 0.5) -> str | None:
    """The closest candidate to a misspelt name, or None."""
    near = close_names(name, candidates, 1, cutoff)
    return near[0] if near else None


def unknown_message(kind: str, name: str, candidates, cutoff: float = 0.4) -> str:
    """'Unknown <kind> '<name>'. Did you mean '<x>'?' (or the list of valid names when none is close)."""
    names = list(candidates)
    near = nearest(name, names, cutoff)
    hint = f" Did you mean '{near}'?" if near else f" Available: {', '.join(names)}."
    return f"Unknown {kind} '{name}'.{hint}"


class Registry(Generic[T]):
    """Named entries of one kind, each with metadata; unknown names raise ConfigError with the nearest name."""

    def __init__(self, kind: str, *, key: str | None = None):
        self.kind, self.key = kind, key
        self._entries: dict[str, T | str] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, obj: T | None = None, **meta) -> Callable[[T], T] | T:
        """Register `obj` under `name` (or use as a decorator); a name registered twice is a programming error."""
        def add(o: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = o
            self._meta[name] = dict(meta)
            return o
        return add(obj) if obj is not None else add

    def register_lazy(self, name: str, target: str, **meta) -> None:
        """Register "package.module:attr", imported on first `get` (keeps torch out of name lookups)."""
        self.register(name, target, **meta)  # type: ignore[arg-type]
        self._meta[name]["lazy"] = True

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self, **where) -> list[str]:
        """Registered names, optionally only those whose metadata matches every `key=value` given."""
        return [n for n in self._entries if all(self._meta[n].get(k) == v for k, v in where.items())]

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata an entry was registered with (a ConfigError for an unknown name)."""
        self._check(name)
        return self._meta[name]

    def get(self, name: str) -> T:
        """The entry registered as `name`; ConfigError naming the nearest valid name when there is none."""
        self._check(name)
        obj = self._entries[name]
        if self._meta[name].get("lazy") and isinstance(obj, str):
            module, _, attr = obj.partition(":")
            obj = getattr(importlib.import_module(module), attr)
            self._entries[name] = obj
        return obj  # type: ignore[return-value]

    def unknown(self, name: str, candidates=None) -> ConfigError:
        """The error for a name that is not registered (among `candidates`, default every name)."""
        return ConfigError(unknown_message(self.kind, name, candidates if candidates is not None else self._entries),
                           key=self.key)

    def _check(self, name: str) -> None:
        if name not in self._entries:
            raise self.unknown(name)
