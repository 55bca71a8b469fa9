"""Tables: CSV, Parquet and ``.npz`` files with a 2-D ``x``, as in-memory splits of raw rows.

A table split holds its rows in memory as one float32 tensor (N, F), the table counterpart of a
uint8 image tensor, so batching, subsets and probes work as for in-memory images. Raw means
before any fitted preprocessing:

- a numeric column holds its values, NaN where missing;
- a categorical column holds the code of its value, an index into ``TableSchema.categories``
  (the values seen in the training split, sorted), NaN where missing and -1 for a value the
  training split never had.

The missing-value policy is the encoder's (``backbones/table_preprocessing.py``): numeric values
are mean-imputed with a missing indicator, and a missing category is a category of its own. The
source only counts them and says so once in the log.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .split import DataError, DataSource, Split, in_memory_split

log = logging.getLogger("selfsup")

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
MISSING_TOKENS = frozenset({"", "?", "na", "n/a", "nan", "null", "none", "<null>"})
# A numeric target with more distinct values than this, or with fractions, is a regression target
MAX_CLASSES = 100
TASKS = ("classification", "regression")

Columns = dict[str, np.ndarray]  # name -> float64 (NaN missing) or object str (None missing)


@dataclass(frozen=True)
class TableSchema:
    """What the columns of a table source are. ``categories[j]`` is () for a numeric column."""

    columns: tuple[str, ...]
    kinds: tuple[str, ...]  # "numeric" | "categorical"
    categories: tuple[tuple[str, ...], ...]
    target: str | None = None
    missing: dict[str, int] = field(default_factory=dict)  # missing values per feature column
    dropped: tuple[str, ...] = ()  # constant columns, skipped by name
    task: str | None = None  # "classification" | "regression" (None: no target)

    @property
    def num_features(self) -> int:
        return len(self.columns)


def is_table_path(path: Path) -> bool:
    return path.suffix.lower() in TABLE_SUFFIXES


def read_csv(path: Path) -> Columns:
    """Columns of a UTF-8 CSV (or TSV) file with a header row; values that all parse as numbers
    make a float64 column, any other column stays text."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f, delimiter=delimiter))
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                        f"{e.start}): save it as UTF-8") from None
    except csv.Error as e:
        raise DataError(f"{path} is not a readable CSV file ({e})") from None
    rows = [r for r in rows if r]  # blank lines
    if len(rows) < 2:
        raise DataError(f"{path} holds no rows: a CSV table needs a header line and data lines")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{path}: column name(s) {dup} appear more than once in the header")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{path} is ragged: line {line} has {len(row)} fields but the header "
                            f"has {len(header)}")
    values = np.array(rows[1:], dtype=object)  # (N, F) of str
    return {name: parse_column(values[:, j]) for j, name in enumerate(header)}


def parse_column(text: np.ndarray) -> np.ndarray:
    """Text values (N,) -> float64 with NaN for missing when every present value is a number,
    else object str with None for missing."""
    present = [v.strip() for v in text]
    missing = np.array([v.lower() in MISSING_TOKENS for v in present])
    try:
        out = np.full(len(present), np.nan)
        out[~missing] = [float(v) for v, m in zip(present, missing, strict=True) if not m]
        return out
    except ValueError:
        return np.array([None if m else v for v, m in zip(present, missing, strict=True)],
                        dtype=object)


def read_parquet(path: Path) -> Columns:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"reading {path} needs pyarrow: pip install 'selfsup[parquet]'") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises its own error types for a damaged file
        raise DataError(f"cannot read {path} as Parquet ({type(e).__name__}: {e})") from None
    import pyarrow.types as pt

    out: Columns = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if pt.is_integer(col.type) or pt.is_floating(col.type):
            out[name] = np.array([np.nan if v is None else float(v) for v in col.to_pylist()])
        else:
            out[name] = np.array([None if v is None else str(v) for v in col.to_pylist()],
                                 dtype=object)
    return out


def columns_from_array(x: np.ndarray, names: Sequence[str] | None = None) -> Columns:
    """A 2-D numeric array (N, F) as columns ``x0 .. x{F-1}`` (or ``names``)."""
    if not np.issubdtype(x.dtype, np.number) and x.dtype != bool:
        raise DataError(f"a table array must be numeric, got dtype {x.dtype}")
    names = list(names) if names is not None else [f"x{j}" for j in range(x.shape[1])]
    return {n: x[:, j].astype(np.float64) for j, n in enumerate(names)}


def _as_text(values: np.ndarray) -> np.ndarray:
    """Any column as object str, None where missing; integral floats print without '.0'."""
    if values.dtype != object:
        return np.array([None if np.isnan(v) else (str(int(v)) if float(v).is_integer()
                                                    else repr(float(v))) for v in values],
                        dtype=object)
    return values


def _is_missing(values: np.ndarray) -> np.ndarray:
    return np.isnan(values) if values.dtype != object else np.array([v is None for v in values])


def infer_task(target: np.ndarray) -> str:
    """Text, or integers with at most `MAX_CLASSES` distinct values: classification; any other
    numbers: regression."""
    if target.dtype == object:
        return "classification"
    distinct = np.unique(target)
    integral = bool(np.all(np.mod(distinct, 1) == 0))
    return "classification" if integral and len(distinct) <= MAX_CLASSES else "regression"


def encode_labels(target: np.ndarray, name: str, where: str, task: str | None = None
                  ) -> tuple[np.ndarray, list[str] | None, str]:
    """From a target column without missing values: class labels (N,) int64 and class names,
    or for a regression target its float64 values (N,) and None; and the task (``task``, or
    `infer_task`'s)."""
    if task is not None and task not in TASKS:
        raise DataError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    task = task or infer_task(target)
    if task == "regression":
        if target.dtype == object:
            raise DataError(f"{where}: target {name!r} holds text, so it cannot be a regression "
                            "target; give a numeric column or --task classification")
        return target.astype(np.float64), None, task
    if target.dtype != object:
        distinct = np.unique(target)
        classes = [str(int(v)) if float(v).is_integer() else repr(float(v)) for v in distinct]
        return np.searchsorted(distinct, target).astype(np.int64), classes, task
    classes = sorted(set(target))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in target], dtype=np.int64), classes, task


def table_source(name: str, columns: Columns, target: str | None = None,
                 categorical: Sequence[str] = (), test: Columns | None = None,
                 task: str | None = None) -> DataSource:
    """A `DataSource` of raw rows from ``columns`` (and a test split from ``test``).

    ``target`` names the label column (None: an unlabelled table); ``task`` says whether it is
    a classification or a regression target (None: `infer_task`; a regression source's labels
    are its float64 values and its ``classes`` None). ``categorical`` forces columns to be
    categorical (text columns always are). Rows without a target value are skipped and
    counted; an all-missing column, an unknown column name or a class with fewer than two rows
    is a `DataError`; a constant column is skipped by name.
    """
    if task is not None and target is None:
        raise DataError(f"{name}: a task ({task}) needs a target column (--target)")
    names = list(columns)
    for col in [target, *categorical]:
        if col is not None and col not in columns:
            raise DataError(f"{name}: no column {col!r}; columns: {', '.join(names)}")
    if test is not None and set(test) != set(columns):
        raise DataError(f"{name}: the test table's columns differ from the training table's")
    parts = [columns] if test is None else [columns, test]
    labels: list[np.ndarray | None] = [None] * len(parts)
    classes = None
    if target is not None:
        keep = [~_is_missing(p[target]) for p in parts]
        skipped = sum(int((~k).sum()) for k in keep)
        if skipped:
            log.info("selfsup: %s: %d row(s) without a %r value skipped", name, skipped, target)
        parts = [{c: v[k] for c, v in p.items()} for p, k in zip(parts, keep, strict=True)]
        joined = np.concatenate([p[target] for p in parts])
        y, classes, task = encode_labels(joined, target, name, task)
        cut = np.cumsum([len(p[target]) for p in parts])[:-1]
        labels = list(np.split(y, cut))
    train = parts[0]
    features, kinds, cats, missing, dropped = [], [], [], {}, []
    for col in names:
        if col == target:
            continue
        values = train[col]
        absent = _is_missing(values)
        if absent.all():
            raise DataError(f"{name}: column {col!r} has no values at all: drop it")
        kind = "categorical" if values.dtype == object or col in categorical else "numeric"
        present = _as_text(values)[~absent] if kind == "categorical" else values[~absent]
        if len(set(present.tolist())) == 1 and not absent.any():
            dropped.append(col)
            continue
        features.append(col)
        kinds.append(kind)
        cats.append(tuple(sorted(set(present.tolist()))) if kind == "categorical" else ())
        count = sum(int(_is_missing(p[col]).sum()) for p in parts)
        if count:
            missing[col] = count
    if not features:
        raise DataError(f"{name}: no feature columns left (constant: {', '.join(dropped)})")
    if dropped:
        log.info("selfsup: %s: %d constant column(s) skipped: %s", name, len(dropped),
                 ", ".join(dropped))
    if missing:
        log.info("selfsup: %s: %d missing value(s) in %d column(s) (%s); numeric ones are "
                 "mean-imputed with a missing indicator, categorical ones are a category of "
                 "their own", name, sum(missing.values()), len(missing),
                 ", ".join(f"{c}: {n}" for c, n in missing.items()))
    schema = TableSchema(tuple(features), tuple(kinds), tuple(cats), target, missing,
                         tuple(dropped), task)
    splits = [in_memory_split(raw_rows(p, schema), y) for p, y in zip(parts, labels,
                                                                        strict=True)]
    if labels[0] is not None and task == "classification":
        check_class_sizes(labels[0], classes, name)
    return DataSource(name, splits[0], splits[1] if len(splits) > 1 else None, channels=0,
                      image_size=0, classes=classes, table=schema)


def raw_rows(columns: Columns, schema: TableSchema) -> torch.Tensor:
    """The raw float32 rows (N, F) of ``columns`` under ``schema`` (codes for categories)."""
    n = len(next(iter(columns.values())))
    rows = np.full((n, schema.num_features), np.nan, dtype=np.float32)
    for j, (col, kind, cats) in enumerate(zip(schema.columns, schema.kinds, schema.categories,
                                              strict=True)):
        values = columns[col]
        if kind == "numeric":
            if values.dtype == object:
                raise DataError(f"column {col!r} holds text but is numeric in the encoder")
            rows[:, j] = values
        else:
            index = {c: i for i, c in enumerate(cats)}
            rows[:, j] = [np.nan if v is None else index.get(v, -1) for v in _as_text(values)]
    return torch.from_numpy(rows)


def check_class_sizes(labels: np.ndarray, classes: list[str], name: str) -> None:
    counts = np.bincount(labels, minlength=len(classes))
    small = [f"{classes[i]!r} ({n})" for i, n in enumerate(counts) if n < 2]
    if small:
        more = f" and {len(small) - 5} more" if len(small) > 5 else ""
        raise DataError(f"{name}: every class needs at least 2 training rows; too few for "
                        f"{', '.join(small[:5])}{more}")


def load_table_file(path: Path, target: str | None = None, categorical: Sequence[str] = (),
                    task: str | None = None) -> DataSource:
    """A CSV, TSV or Parquet file; no test split of its own (a stratified holdout as for any
    source without one, a random one for a regression target)."""
    columns = read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else read_csv(path)
    return table_source(str(path), columns, target, categorical, task=task)


def align_table(source: DataSource, columns: Sequence[str], kinds: Sequence[str],
                categories: Sequence[Sequence[str]]) -> DataSource:
    """``source`` re-coded for an encoder fitted on another table: its columns in the encoder's
    order, its category codes indexing the encoder's categories (unseen ones -1).
    ``categories``: one list per categorical column, as `TablePreprocessing` keeps them."""
    have = source.table
    per_cat = iter(categories)
    categories = [next(per_cat) if k == "categorical" else () for k in kinds]
    index = {c: j for j, c in enumerate(have.columns)}
    lost = [c for c in columns if c not in index]
    if lost:
        raise DataError(f"{source.name} lacks the column(s) {lost} the encoder was trained on")
    for c, kind in zip(columns, kinds, strict=True):
        if have.kinds[index[c]] != kind:
            raise DataError(f"{source.name}: column {c!r} is {have.kinds[index[c]]} here but "
                            f"{kind} in the encoder")

    def recode(split: Split | None) -> Split | None:
        if split is None:
            return None
        rows = split.images
        out = torch.empty((len(rows), len(columns)), dtype=torch.float32)
        for j, (c, kind, cats) in enumerate(zip(columns, kinds, categories, strict=True)):
            col = rows[:, index[c]]
            if kind == "categorical":
                own = have.categories[index[c]]
                wanted = {v: i for i, v in enumerate(cats)}
                lookup = torch.tensor([wanted.get(v, -1) for v in own] + [-1.0])
                codes = torch.where(col.isnan(), torch.zeros_like(col), col).long()
                col = torch.where(col.isnan(), col, lookup[codes.clamp(min=-1)])
            out[:, j] = col
        return in_memory_split(out, split.labels)

    schema = dataclasses.replace(have, columns=tuple(columns), kinds=tuple(kinds),
                                 categories=tuple(tuple(c) for c in categories))
    return dataclasses.replace(source, train=recode(source.train), test=recode(source.test),
                               table=schema)
