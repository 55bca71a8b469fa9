"""Export a run's embeddings for use elsewhere: ``.npy`` (+ sidecars) or Parquet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..data import DataSource, Split
from .features import extract_features

FORMATS = (".npy", ".parquet")


def _splits(source: DataSource, which: str) -> list[tuple[str, Split]]:
    named = [("train", source.train)] + ([("test", source.test)] if source.test else [])
    if which == "all":
        return named
    picked = [(n, s) for n, s in named if n == which]
    if not picked:
        raise ValueError(f"{source.name} has no {which!r} split; valid: all, "
                         f"{', '.join(n for n, _ in named)}")
    return picked


def embed_source(encoder: nn.Module, source: DataSource, split: str = "all",
                 bf16: bool = False) -> dict[str, Any]:
    """Embeddings (N, D) float32 of the chosen split(s) in order (train, then test), with
    labels (N,) int64 (-1 where unlabeled; a regression target's float64 values), the split
    of each row, and file paths for folders."""
    xs, ys, names, paths = [], [], [], []
    for name, s in _splits(source, split):
        x, y = extract_features(encoder, s, bf16=bf16)
        if s.paths is not None and len(s.paths) != len(x):
            raise RuntimeError(f"{len(s.paths) - len(x)} image(s) of {source.name} failed to "
                               "decode while embedding; rows would not match their paths")
        xs.append(x)
        ys.append(y)
        names += [name] * len(x)
        paths += s.paths if s.paths is not None else []
    labels = np.concatenate(ys)
    return {"embeddings": np.concatenate(xs).astype(np.float32),
            "labels": labels if labels.dtype.kind == "f" else labels.astype(np.int64),
            "split": names,
            "paths": paths or None}


def check_output(out: str | Path) -> None:
    """Fail before any work when ``out`` has an unknown format or its writer is missing."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"unknown embedding format {suffix!r} for {out}; valid: "
                         f"{', '.join(FORMATS)}")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ImportError("writing .parquet needs pyarrow: pip install 'selfsup[parquet]' "
                              "(or write .npy)") from None


def write_embeddings(table: dict[str, Any], out: str | Path, meta: dict[str, Any]) -> list[Path]:
    """Write ``table`` (from `embed_source`) to ``out``; returns the files written.

    ``X.npy``: float32 (N, D), with ``X.labels.npy`` (int64 (N,); float64 for a regression
    target), ``X.json`` (split row ranges, dimension, preprocessing, run) and, for image
    folders, ``X.paths.txt`` (one path per row). ``X.parquet``: one row per image with
    columns ``split``, ``label``, ``path`` (folders only) and ``embedding`` (a fixed-size list
    of float32); needs pyarrow (``pip install 'selfsup[parquet]'``).
    """
    out = Path(out)
    check_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    emb, labels = table["embeddings"], table["labels"]
    if out.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = {"split": pa.array(table["split"]), "label": pa.array(labels)}
        if table["paths"] is not None:
            cols["path"] = pa.array(table["paths"])
        cols["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)),
                                                              emb.shape[1])
        schema_meta = {b"selfsup": json.dumps(meta).encode()}
        pq.write_table(pa.table(cols).replace_schema_metadata(schema_meta), out)
        return [out]
    stem = out.with_suffix("")
    np.save(out, emb)
    written = [out, Path(f"{stem}.labels.npy"), Path(f"{stem}.json")]
    np.save(written[1], labels)
    ranges: dict[str, list[int]] = {}
    for i, name in enumerate(table["split"]):
        ranges.setdefault(name, [i, i])[1] = i + 1
    written[2].write_text(json.dumps({**meta, "n": int(len(emb)), "dim": int(emb.shape[1]),
                                      "rows": ranges}, indent=2))
    if table["paths"] is not None:
        written.append(Path(f"{stem}.paths.txt"))
        written[-1].write_text("\n".join(table["paths"]) + "\n")
    return written
