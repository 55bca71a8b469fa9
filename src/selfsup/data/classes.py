"""Keep only some classes of a labelled source: the stages of a continual-pretraining stream."""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from .split import DataError, DataSource, Split, _subset


def parse_classes(spec: str) -> list[int]:
    """'0-4' -> [0, 1, 2, 3, 4]; '1,3,7-8' -> [1, 3, 7, 8]."""
    labels: set[int] = set()
    for part in str(spec).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m:
            raise DataError(f"classes {spec!r} not understood; use e.g. 0-4 or 1,3,5")
        lo, hi = int(m[1]), int(m[2] or m[1])
        if hi < lo:
            raise DataError(f"classes {spec!r}: range {part} runs backwards")
        labels.update(range(lo, hi + 1))
    return sorted(labels)


def select_classes(source: DataSource, spec: str) -> DataSource:
    """``source`` with both splits cut to the labels in ``spec`` (labels keep their numbers)."""
    wanted = parse_classes(spec)
    if source.train.labels is None:
        raise DataError(f"cannot select classes {spec} of {source.name}: it has no labels")
    present = set(np.unique(source.train.labels).tolist())
    missing = sorted(set(wanted) - present)
    if missing:
        raise DataError(f"{source.name} has no class(es) {missing}; its labels are "
                        f"{min(present)}-{max(present)}")

    def keep(split: Split | None) -> Split | None:
        if split is None or split.labels is None:
            return split
        return _subset(split, np.flatnonzero(np.isin(split.labels, wanted)))

    return dataclasses.replace(source, train=keep(source.train), test=keep(source.test))
