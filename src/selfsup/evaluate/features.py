"""Frozen features, always computed with the encoder's own preprocessing."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch import nn
from torch.utils.data import DataLoader

from ..backbones import Preprocessing
from ..data import Split

PROGRESS_MIN_IMAGES = 10_000  # a split this large shows a progress bar while it is read
LARGE_SOURCE_WORKERS = 4  # decoding processes for a large folder or shard source


# Whole splits embedded while `remembering()` is on, by the encoder's weights, the split's
# content and the preprocessing. `selfsup.pretrain` evaluates and then writes the report. The
# report's map and neighbour grid sample the same encoder's features of the same splits:
# 12,000 images, ~25 s of CIFAR-10 on 2 cores. Outside the context nothing is kept.
_REMEMBERED: dict[str, tuple[np.ndarray, np.ndarray]] | None = None


@contextmanager
def remembering() -> Iterator[None]:
    """Keep the features `extract_features` computes for whole splits until the block ends."""
    global _REMEMBERED
    outer = _REMEMBERED
    _REMEMBERED = {} if outer is None else outer
    try:
        yield
    finally:
        _REMEMBERED = outer


def features_key(encoder: nn.Module, split: Split, pre: Preprocessing, bf16: bool
                 ) -> str | None:
    """A digest of the encoder's weights, the split's images (or file paths) and labels, and
    the preprocessing; None for a streamed split (tar shards), which is not remembered."""
    if split.images is None and split.paths is None:
        return None
    h = hashlib.blake2b(digest_size=20)
    h.update(repr((sorted(pre.to_dict().items()), bf16)).encode())
    for name, t in encoder.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    if split.images is not None:
        h.update(split.images.contiguous().reshape(-1).view(torch.uint8).numpy())
    else:
        h.update("\0".join(split.paths).encode(errors="surrogateescape"))
    if split.labels is not None:
        h.update(np.ascontiguousarray(split.labels))
    return h.hexdigest()


def remembered(encoder: nn.Module, split: Split, preprocessing: Preprocessing | None = None,
               bf16: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """The features (N, D) and labels (N,) of every item of ``split``, row i for item i, when
    `remembering` holds them; else None."""
    if _REMEMBERED is None:
        return None
    key = features_key(encoder, split, preprocessing or encoder.preprocessing, bf16)
    return _REMEMBERED.get(key) if key is not None else None


def progress_console() -> Console:
    """Where the progress of a long extraction goes: stderr, shown only on a terminal."""
    return Console(stderr=True)


def iter_uint8_batches(split: Split, batch_size: int = 512, num_workers: int | None = None,
                       what: str = "features"):
    """Yield (uint8 images (B, C, H, W), int64 labels (B,)) over a split, one batch at a time:
    a folder or shard source is decoded as it is read (DataLoader workers for a large one),
    never held whole. A split of `PROGRESS_MIN_IMAGES` or more shows a progress bar ``what``.

    In order, except for a shard source read by several workers (labels come with their
    images either way).
    """
    large = len(split) >= PROGRESS_MIN_IMAGES
    if split.images is not None:
        labels = (torch.as_tensor(split.labels) if split.labels is not None
                  else torch.full((len(split),), -1, dtype=torch.long))
        batches = ((split.images[i : i + batch_size], labels[i : i + batch_size])
                   for i in range(0, len(split), batch_size))
    else:
        if num_workers is None:
            num_workers = min(LARGE_SOURCE_WORKERS, os.cpu_count() or 1) if large else 0
        batches = iter(DataLoader(split.dataset, batch_size=batch_size, shuffle=False,
                                  num_workers=num_workers, collate_fn=split.collate_fn))
    if not large:
        yield from batches
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("images"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=progress_console(), transient=True) as bar:
        task = bar.add_task(what, total=len(split))
        for images, y in batches:
            bar.advance(task, len(y))
            yield images, y


def parse_preprocessing(spec: str, own: Preprocessing,
                        native_size: int | None = None) -> Preprocessing:
    """An evaluation-time override of an encoder's preprocessing.

    ``spec`` is ``none`` (pixels in [0, 1] at the source's own size ``native_size``, no
    normalization) or comma-separated ``size=S``, ``mean=M``, ``std=S`` and
    ``resize=resize_exact|resize_shorter_center_crop``; a mean or std is one value for every
    channel or one per channel separated by ``:`` (``mean=0.48:0.46:0.41``). Unset keys keep the
    encoder's own values.
    """
    if spec.strip().lower() == "none":
        size = native_size or own.input_size
        return Preprocessing(size, own.channels, (0.0,) * own.channels, (1.0,) * own.channels,
                             own.resize_rule)
    fields = {"size": own.input_size, "mean": own.mean, "std": own.std,
              "resize": own.resize_rule}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in fields or not value:
            raise ValueError(f"preprocessing override {item!r} not understood; use none or "
                             "size=S,mean=M,std=S,resize=R (e.g. size=32,mean=0.5,std=0.5)")
        try:
            if key == "size":
                fields["size"] = int(value)
            elif key in ("mean", "std"):
                values = tuple(float(v) for v in value.split(":"))
                fields[key] = values * own.channels if len(values) == 1 else values
            else:
                fields["resize"] = value.strip()
        except ValueError:
            raise ValueError(f"preprocessing override {item!r}: {value!r} is not a number"
                             ) from None
    return Preprocessing(fields["size"], own.channels, fields["mean"], fields["std"],
                         fields["resize"])


@torch.no_grad()
def extract_features(encoder: nn.Module, split: Split, batch_size: int = 512,
                     bf16: bool = False, preprocessing: Preprocessing | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Pooled encoder features (N, D) float32 and labels (N,) for a split, through the encoder's
    own preprocessing unless ``preprocessing`` overrides it."""
    encoder.eval()
    device = next(encoder.parameters()).device
    pre = preprocessing or encoder.preprocessing
    key = features_key(encoder, split, pre, bf16) if _REMEMBERED is not None else None
    if key is not None and key in _REMEMBERED:
        return _REMEMBERED[key]
    # filled in place: a list of batches then a concatenation would hold the features twice
    feats: np.ndarray | None = None
    # a regression target's labels are float64 values
    labels = np.empty(len(split), dtype=np.int64 if split.labels is None else split.labels.dtype)
    n = 0
    for images, y in iter_uint8_batches(split, batch_size):
        if not len(y):
            continue  # every image of the batch failed to decode
        x = pre(images.to(device))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            f = encoder(x).float().cpu().numpy()  # (B, D)
        if feats is None:
            feats = np.empty((len(split), f.shape[1]), dtype=np.float32)
        feats[n : n + len(f)] = f
        labels[n : n + len(f)] = y.numpy()
        n += len(f)
    if feats is None:
        raise ValueError(f"no image of the {len(split)} could be decoded")
    if n < len(split):  # bad files dropped leave the tail unused: a copy only then
        return feats[:n].copy(), labels[:n].copy()
    if key is not None:  # row i is item i: the report may sample it
        _REMEMBERED[key] = (feats, labels)
    return feats, labels


def raw_pixels(split: Split, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Flattened pixels in [0, 1] (N, C*H*W): the baseline every encoder must beat."""
    xs, ys = [], []
    for images, y in iter_uint8_batches(split, what="raw pixels"):
        x = images.float() / 255.0
        if size is not None and x.shape[-1] != size:
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                                antialias=True)
        xs.append(x.flatten(1))
        ys.append(y)
    return torch.cat(xs).numpy(), torch.cat(ys).numpy()


def raw_table_features(split: Split, preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """A table's rows as the raw-feature baseline reads them (N, num_numeric + one-hot
    categories), through the encoder's fitted `TablePreprocessing`."""
    xs, ys = [], []
    for rows, y in iter_uint8_batches(split):
        xs.append(preprocessing.one_hot(rows))
        ys.append(y)
    return torch.cat(xs).numpy(), torch.cat(ys).numpy()
