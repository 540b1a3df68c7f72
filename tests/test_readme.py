"""The README stays true: its configuration table lists every key of the schema with its default and help.

`python tests/test_readme.py` rewrites the table from the schema after a key is added or changed.
"""

import json
import re
import sys
from dataclasses import fields
from pathlib import Path

import tomlkit

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TABLE = re.compile(r"(\| key \| default \| meaning \|\n\|---\|---\|---\|\n)((?:\|.*\|\n)+)")


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict) and not v:
        return "{  }"
    return tomlkit.item(v).as_string()


def schema_rows() -> str:
    """The table's rows, from the schema's defaults and help texts."""
    sys.path.insert(0, str(ROOT))
    from kdstudio.core.config import Config, _is_section
    cfg, rows = Config(), []

    def row(key, f, v):
        m = f.metadata
        text = m.get("help", "").replace("|", "\\|")
        if m.get("choices"):
            text += " (" + " \\| ".join(map(str, m["choices"])) + ")"
        rows.append(f"| `{key}` | `{_value(v)}` | {text} |")
    for f in fields(cfg):
        if _is_section(f):
            section = getattr(cfg, f.name)
            for sf in fields(section):
                row(f"{f.name}.{sf.name}", sf, getattr(section, sf.name))
        else:
            row(f.name, f, getattr(cfg, f.name))
    return "\n".join(rows) + "\n"


def test_the_configuration_table_lists_every_key_as_the_schema_has_it():
    m = TABLE.search(README.read_text(encoding="utf-8"))
    assert m, "README.md has no configuration table"
    assert m.group(2) == schema_rows(), "README's configuration table is stale: run `python tests/test_readme.py`"


def test_the_ecosystem_snippets_are_valid_configs():
    """Each TOML block of "Distil your own torchvision / timm / Hugging Face model" loads, and its only problems
    are the example paths that do not exist here."""
    from kdstudio.core import config as config_mod
    text = README.read_text(encoding="utf-8")
    section = text.split("## Distil your own torchvision / timm / Hugging Face model", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```toml\n(.*?)```", section, re.S)
    assert len(blocks) == 3
    for block in blocks:
        cfg = config_mod.loads(block)
        assert cfg.teacher.source == "file" and cfg.data.source == "folder"
        assert {k for k, _ in config_mod.problems(cfg)} <= {"data.path", "teacher.path"}, block


if __name__ == "__main__":
    text = README.read_text(encoding="utf-8")
    README.write_text(TABLE.sub(lambda m: m.group(1) + schema_rows(), text, count=1), encoding="utf-8")
    print("README.md configuration table rewritten from the schema")
