"""Config ⇄ TOML text through tomlkit: whole files for new configs, and in-place edits that keep a user's layout.

`dumps` writes a whole config (optionally with a comment per key, as `kdstudio init` does). `update` takes the
text of an existing file and a config and changes only the values that differ, in place: comments, key order,
blank lines and the way unchanged values are spelled all survive. A key the file already has keeps its line even
when its new value equals the default; a key the file lacks is added to its section only when its value differs
from the default (absent already means default), so a hand-trimmed file stays trimmed.
"""

from __future__ import annotations

import math
import sys
from dataclasses import MISSING, fields, is_dataclass

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

from ..errors import ConfigError

COMMENT_COLUMN = 41  # per-key comments start here (after `key = value` padded to 40), as they always did


def _item(value):
    """A tomlkit item for a config value; tables inside a section are written inline (`{ beta = 8.0 }`)."""
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        for i, (k, v) in enumerate(value.items()):
            item = _item(v)
            if i == 0:
                item.trivia.indent = " "  # `{ beta = 8.0 }`, the spacing the help texts and older files use
            table.add(k, item)
        if value:
            table.add(tomlkit.ws(" "))
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        for v in value:
            array.append(_item(v))
        return array
    return tomlkit.item(value)  # strings are escaped here: \r, \t, \x01, quotes, backslashes all round-trip


def value_text(value) -> str:
    """One config value as TOML text (`[1, 2]`, `{ beta = 8.0 }`, `"a\\tb"`): how the forms show lists and tables."""
    return _item(value).as_string()


def _help(f) -> str:
    extra = f" ({' | '.join(f.metadata['choices'])})" if f.metadata.get("choices") else ""
    return f"{f.metadata.get('help', '')}{extra}"


def _add(container, key: str, f, value, comments: bool) -> None:
    item = _item(value)
    if comments and f.metadata.get("help"):
        item.comment(_help(f))
        width = len(f"{tomlkit.key(key).as_string()} = {item.as_string()}")
        item.trivia.comment_ws = " " * max(1, COMMENT_COLUMN - width)
    container.add(key, item)


def _is_section(f) -> bool:
    return f.default_factory is not MISSING and is_dataclass(f.default_factory)


def _schema(config_cls):
    """[(section or None, [fields])] in schema order; None holds the top-level keys. The Config class is passed in
    (from the config being written): this module sits below config/__init__ and never imports it."""
    top = [f for f in fields(config_cls) if not _is_section(f)]
    return [(None, top)] + [(f.name, list(fields(f.default_factory))) for f in fields(config_cls) if _is_section(f)]


def dumps(cfg, *, comments: bool = False, header: str = "") -> str:
    """TOML text of the whole config; with comments=True each key carries its help text, `header` goes on top."""
    values = cfg.to_dict()
    doc = tomlkit.document()
    for line in header.splitlines():
        doc.add(tomlkit.comment(line.lstrip("# ")) if line.strip() else tomlkit.nl())
    if header:
        doc.add(tomlkit.nl())
    for section, section_fields in _schema(type(cfg)):
        target = doc if section is None else tomlkit.table()
        for f in section_fields:
            _add(target, f.name, f, values[f.name] if section is None else values[section][f.name], comments)
        if section is not None:
            doc.add(section, target)
    text = doc.as_string()
    return text if text.endswith("\n") else text + "\n"


def same(a, b) -> bool:
    """Equal as config values: 4 == 4.0, lists and tables item by item, NaN equal to NaN, True never 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    numbers = isinstance(a, (int, float)) and isinstance(b, (int, float))
    return (type(a) is type(b) or numbers) and a == b


def update(text: str, cfg) -> str:
    """`text` (a TOML config file) with the values of `cfg` written in place; a fresh file when `text` is empty
    or cannot be edited in place. The result always parses back to exactly `cfg`."""
    if not text.strip():
        return dumps(cfg)
    try:
        doc = tomlkit.parse(text)
        old = tomllib.loads(text)
    except (TOMLKitError, tomllib.TOMLDecodeError):  # the caller checked the text; tomlkit may still differ
        return dumps(cfg)
    # what a missing key would read back as: the method's own temperature/alpha, not kd's
    values, defaults = cfg.to_dict(), type(cfg).from_dict({"distill": {"method": cfg.distill.method}}).to_dict()
    for section, section_fields in _schema(type(cfg)):
        have = old if section is None else old.get(section, {})
        want = values if section is None else values[section]
        default = defaults if section is None else defaults[section]
        for f in section_fields:
            key, value = f.name, want[f.name]
            if key in have:
                if not same(have[key], value):
                    (doc if section is None else doc[section])[key] = _item(value)  # keeps the line's comment
            elif not same(value, default[key]):
                _insert(doc, section, key, value, old)
                have = old if section is None else old.setdefault(section, {})
                have[key] = value  # so the next missing key of a new section finds its table
    out = doc.as_string()
    try:
        ok = _same_config(tomllib.loads(out), values, type(cfg))
    except ValueError:  # TOMLDecodeError included
        ok = False
    return out if ok else dumps(cfg)  # an odd layout tomlkit cannot edit: the values matter more than the layout


def _insert(doc, section: str | None, key: str, value, old: dict) -> None:
    """Add a key the file lacks right after the last key of its section (so it lands above the blank lines and
    comments that introduce the next table); a missing section becomes a new [table] at the end of the file."""
    if section is not None and section not in old:
        table = tomlkit.table()
        table[key] = _item(value)
        doc[section] = table
        return
    owner = doc if section is None else doc[section]
    # A [table] header's body, or the document's top: insert after their last plain key. Dotted keys and
    # inline tables have no trailing comments to step over, so appending is right for them.
    body = doc if section is None else owner.value if isinstance(owner, Table) and not owner.is_super_table() \
        else None
    last = None if body is None else next((k for k, v in reversed(body.body)
                                           if k is not None and not isinstance(v, (Table, AoT))), None)
    if last is not None and hasattr(body, "_insert_after"):  # tomlkit has no public "insert after"
        body._insert_after(last, key, _item(value))
    else:
        owner[key] = _item(value)


def _same_config(raw: dict, values: dict, config_cls) -> bool:
    try:
        return same(config_cls.from_dict(raw).to_dict(), values)
    except ConfigError:
        return False
