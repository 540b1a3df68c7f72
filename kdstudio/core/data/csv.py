"""CSV tables: a header row, numeric feature columns, and a label column chosen by name (`data.label_column`).

The delimiter (comma, semicolon or tab) is detected from the header. Labels that are all whole numbers ≥ 0 are
class indices; any other labels are class names, numbered in sorted order.

Resident: the table is read whole. Streamed (data.mode, or auto when the decoded table would not fit the budget):
each file is converted once, in chunks, into a float32 .npy in the run folder's cache/ (with its labels beside it)
and then streamed memory-mapped by the tensors source's reader, so memory stays flat at any size.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..errors import ConfigError, KDError
from ..registry import nearest

CHUNK_ROWS = 65_536  # rows parsed and written at a time when a table is converted for streaming


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


@dataclass
class Table:
    """A CSV file's layout: its header, the label column and the feature columns."""

    path: Path
    header: list[str]
    label: int
    features: list[int]

    @property
    def label_name(self) -> str:
        """The label column's header."""
        return self.header[self.label]


def _open(path: Path):
    if not path.is_file():
        raise KDError(f"CSV file '{path}' does not exist; check data.path.")
    try:
        f = open(path, encoding="utf-8-sig", newline="")
        first = f.readline()
    except (OSError, UnicodeDecodeError) as e:
        raise KDError(f"CSV file '{path}' cannot be read as UTF-8 text ({type(e).__name__}); save it as UTF-8 CSV.")
    if not first.strip():
        f.close()
        raise KDError(f"CSV file '{path}' is empty; it needs a header row and one row per sample.")
    return f, first


def read_table(path: Path, label_column: str) -> Table:
    """The header of `path` with the label column found (case-insensitively, else the nearest name suggested)."""
    f, first = _open(path)
    f.close()
    header = [h.strip() for h in next(csv.reader([first], delimiter=_delimiter(first)))]
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
    return Table(path, header, li, feat_cols)


def rows(table: Table) -> Iterator[tuple[int, list[str]]]:
    """(line number, values) of every non-blank data row, read as the file streams; a row of the wrong length is
    one sentence naming its line."""
    f, first = _open(table.path)
    width = len(table.header)
    try:
        for n, row in enumerate(csv.reader(f, delimiter=_delimiter(first)), start=2):
            if not any(c.strip() for c in row):
                continue
            if len(row) != width:
                raise KDError(f"CSV file '{table.path}', line {n} has {len(row)} values but the header has {width} "
                              "columns; every row needs one value per column.")
            yield n, row
    except UnicodeDecodeError as e:
        raise KDError(f"CSV file '{table.path}' cannot be read as UTF-8 text ({type(e).__name__}); save it as "
                      "UTF-8 CSV.") from None
    finally:
        f.close()


def _features(table: Table, chunk: list[list[str]], first_row: int) -> np.ndarray:
    """A chunk of rows' feature values as float32; a non-number or non-finite value is one sentence."""
    feats = [[row[i] for i in table.features] for row in chunk]
    try:
        x = np.asarray(feats, dtype=np.float32)
    except ValueError:
        for n, row in enumerate(feats, start=first_row):
            for i, value in zip(table.features, row):
                try:
                    float(value)
                except ValueError:
                    what = "is empty" if not value.strip() else f"has '{value.strip()[:30]}', which is not a number"
                    raise KDError(f"CSV file '{table.path}', column '{table.header[i]}' {what} (data row {n}); "
                                  "feature columns must be numeric: fix, encode or drop that column.") from None
        raise
    if not np.isfinite(x).all():
        r, c = np.argwhere(~np.isfinite(x))[0]
        raise KDError(f"CSV file '{table.path}', column '{table.header[table.features[c]]}' (data row "
                      f"{first_row + r}) is not a finite number; clean the data.")
    return x


def _labels(table: Table, labels: list[str]) -> tuple[torch.Tensor, list[str] | None]:
    """Class indices (and class names when the labels are not all indices)."""
    if not labels:
        raise KDError(f"CSV file '{table.path}' has a header but no data rows.")
    empty = [n for n, lab in enumerate(labels, start=1) if not lab]
    if empty:
        raise KDError(f"CSV file '{table.path}': the label column '{table.label_name}' is empty in data row "
                      f"{empty[0]}.")
    idx = [_as_index(lab) for lab in labels]
    if all(i is not None for i in idx):
        return torch.tensor(idx, dtype=torch.long), None
    names = sorted(set(labels))
    lookup = {n: i for i, n in enumerate(names)}
    return torch.tensor([lookup[lab] for lab in labels], dtype=torch.long), names


def read_csv_file(path: Path, label_column: str):
    """One CSV file → RawSplit, read whole (every problem is a KDError naming the file, line and column)."""
    from .bundle import RawSplit
    table = read_table(path, label_column)
    data = [row for _, row in rows(table)]
    labels = [row[table.label].strip() for row in data]
    y, names = _labels(table, labels)
    return RawSplit(torch.from_numpy(_features(table, data, 1)), y, names, str(path))


# ---- streamed: converted once into the run folder's cache -------------------------------------------------

def count_rows(path: Path) -> int:
    """Lines after the header (an upper bound on data rows: blank lines count), from a byte scan."""
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            n += block.count(b"\n")
            last = block[-1:]
    return max(0, n - (last == b"\n"))


def _cache_names(path: Path, label_column: str, cache_dir: Path) -> tuple[Path, Path, Path]:
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{label_column}".encode()).hexdigest()[:12]
    base = cache_dir / f"csv-{path.stem}-{key}"
    return Path(f"{base}-x.npy"), Path(f"{base}-y.npy"), Path(f"{base}-names.json")


def convert(path: Path, label_column: str, cache_dir: Path) -> tuple[Path, list[str] | None, bool]:
    """(inputs .npy, class names or None, converted now?) of a CSV file converted once for streaming: features as a
    float32 (N, F) .npy written CHUNK_ROWS rows at a time, labels beside it (x → y), names in a .json. A stopped
    conversion leaves only .part files, never a half cache that is reused."""
    x_path, y_path, names_path = _cache_names(path, label_column, cache_dir)
    if x_path.is_file() and y_path.is_file() and names_path.is_file():
        return x_path, json.loads(names_path.read_text(encoding="utf-8")), False
    table = read_table(path, label_column)
    labels = [row[table.label].strip() for _, row in rows(table)]  # pass 1: the labels, the row count, the shape
    y, names = _labels(table, labels)
    cache_dir.mkdir(parents=True, exist_ok=True)
    part = x_path.with_name(x_path.name + ".part")
    out = np.lib.format.open_memmap(part, mode="w+", dtype=np.float32, shape=(len(labels), len(table.features)))
    try:
        chunk, start, written = [], 1, 0
        for _, row in rows(table):  # pass 2: the features, chunk by chunk
            chunk.append(row)
            if len(chunk) == CHUNK_ROWS:
                out[written:written + len(chunk)] = _features(table, chunk, start)
                written, start, chunk = written + len(chunk), start + len(chunk), []
        if chunk:
            out[written:written + len(chunk)] = _features(table, chunk, start)
        out.flush()
        del out
        from ..store.files import atomic_write_text
        np.save(y_path, y.numpy())
        atomic_write_text(names_path, json.dumps(names))
        part.replace(x_path)  # last: the inputs file is what marks the cache complete
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return x_path, names, True


def _load_streamed(cfg, paths: dict[str, str], reason: str, cache_dir: Path | None):
    import tempfile

    from .stream import fmt_bytes
    from .tensor_stream import load_streamed
    cache_dir = cache_dir or Path(tempfile.gettempdir()) / "kdstudio-cache"
    converted, names, notes = {}, {}, []
    for k, p in paths.items():
        if p:
            src = Path(p).expanduser()
            x_path, names[k], fresh = convert(src, cfg.data.label_column, cache_dir)
            converted[k] = str(x_path)
            notes.append(f"'{src.name}' {'converted once to' if fresh else 'reuses its conversion'} '{x_path}' "
                         f"({fmt_bytes(x_path.stat().st_size)})")
    bundle = load_streamed(cfg, converted, f"{reason}; " + "; ".join(notes), [], None, class_names=names)
    bundle.name = Path(cfg.data.path).stem
    return bundle


def load_csv(cfg, cache_dir: Path | None = None):
    """The csv source: data.path (+ optional data.val_path / data.test_path), split and normalised; read whole,
    or streamed from a one-time conversion in `cache_dir` (the run folder's cache/) when data.mode says so."""
    from .bundle import load_splits
    from .stream import choose_mode
    d = cfg.data
    col = d.label_column
    paths = {"train": d.path, "val": d.val_path, "test": d.test_path}
    reason = ""
    if d.path and d.mode != "resident":
        tables = {k: read_table(Path(p).expanduser(), col) for k, p in paths.items() if p}
        n = sum(count_rows(t.path) for t in tables.values())
        mode, reason = choose_mode(cfg, n, (len(tables["train"].features),), "rows")
        if mode == "streamed":
            return _load_streamed(cfg, paths, reason, cache_dir)
    bundle = load_splits(cfg, lambda p: read_csv_file(p, col), name=Path(cfg.data.path).stem)
    bundle.mode_reason = reason
    return bundle
