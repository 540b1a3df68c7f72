"""CSV tables: a header row, numeric feature columns, and a label column chosen by name (`data.label_column`).

The delimiter (comma, semicolon or tab) is detected from the header. Labels that are all whole numbers ≥ 0 are
class indices; any other labels are class names, numbered in sorted order.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, KDError
from ..registry import nearest


def _delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _as_index(label: str) -> int | None:
    try:
        v = float(label)
    except ValueError:
        return None
    return int(v) if v.is_integer() and v >= 0 else None


def read_csv_file(path: Path, label_column: str):
    """One CSV file → RawSplit (every problem is a KDError naming the file, line and column)."""
    from .bundle import RawSplit
    if not path.is_file():
        raise KDError(f"CSV file '{path}' does not exist; check data.path.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise KDError(f"CSV file '{path}' cannot be read as UTF-8 text ({type(e).__name__}); save it as UTF-8 CSV.")
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise KDError(f"CSV file '{path}' is empty; it needs a header row and one row per sample.")
    rows = list(csv.reader(lines, delimiter=_delimiter(lines[0])))
    header = [h.strip() for h in rows[0]]
    if label_column not in header:
        folded = [h for h in header if h.lower() == label_column.lower()]
        if not folded:
            near = nearest(label_column, header)
            hint = f"did you mean '{near}'?" if near else "set data.label_column to one of them."
            raise ConfigError(f"CSV file '{path}' has no column '{label_column}'; its columns are "
                              f"{', '.join(header[:12])}{' ...' if len(header) > 12 else ''} — {hint}",
                              key="data.label_column")
        label_column = folded[0]
    li = header.index(label_column)
    feat_cols = [i for i in range(len(header)) if i != li]
    if not feat_cols:
        raise KDError(f"CSV file '{path}' has only the label column '{label_column}'; it needs feature columns.")
    feats, labels = [], []
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise KDError(f"CSV file '{path}', line {n} has {len(row)} values but the header has {len(header)} "
                          "columns; every row needs one value per column.")
        labels.append(row[li].strip())
        feats.append([row[i] for i in feat_cols])
    if not labels:
        raise KDError(f"CSV file '{path}' has a header but no data rows.")
    try:
        x = np.asarray(feats, dtype=np.float32)
    except ValueError:
        for n, row in enumerate(feats, start=2):
            for i, value in zip(feat_cols, row):
                try:
                    float(value)
                except ValueError:
                    what = "is empty" if not value.strip() else f"has '{value.strip()[:30]}', which is not a number"
                    raise KDError(f"CSV file '{path}', column '{header[i]}' {what} (data row {n - 1}); feature "
                                  "columns must be numeric: fix, encode or drop that column.") from None
        raise
    if not np.isfinite(x).all():
        r, c = np.argwhere(~np.isfinite(x))[0]
        raise KDError(f"CSV file '{path}', column '{header[feat_cols[c]]}' (data row {r + 1}) is not a finite "
                      "number; clean the data.")
    empty = [n for n, lab in enumerate(labels, start=1) if not lab]
    if empty:
        raise KDError(f"CSV file '{path}': the label column '{label_column}' is empty in data row {empty[0]}.")
    idx = [_as_index(lab) for lab in labels]
    if all(i is not None for i in idx):
        y, names = torch.tensor(idx, dtype=torch.long), None
    else:
        names = sorted(set(labels))
        lookup = {n: i for i, n in enumerate(names)}
        y = torch.tensor([lookup[lab] for lab in labels], dtype=torch.long)
    return RawSplit(torch.from_numpy(x), y, names, str(path))


def load_csv(cfg):
    """The csv source: data.path (+ optional data.val_path / data.test_path), split and normalised."""
    from .bundle import load_splits
    col = cfg.data.label_column
    return load_splits(cfg, lambda p: read_csv_file(p, col), name=Path(cfg.data.path).stem)
