"""``load_source``: one name or path in, a ``DataSource`` out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from .builtin_tables import BUILTIN_TABLES, builtin_table
from .digits import load_digits_source
from .folder import load_folder
from .idx import load_fashion_mnist
from .npz import load_npz
from .shards import is_shard_spec, load_shards
from .split import DataError, DataSource, Split, in_memory_split
from .table import align_table, is_table_path, load_table_file

NAMED = {"fashion-mnist": load_fashion_mnist, "digits": load_digits_source}
FOLDER_CHANNELS = 3
FOLDER_IMAGE_SIZE = 64
RESIZE_CHUNK = 2048  # images per interpolate call: float copies of all 60k would need GBs
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, the weights Pillow's "L" conversion uses


def load_source(spec: str, *, channels: int | None = None,
                image_size: int | None = None, target: str | None = None,
                categorical: tuple[str, ...] = (), task: str | None = None) -> DataSource:
    """Load ``fashion-mnist``, ``digits``, a ``.npz`` file or an image folder; or a table: a
    built-in one (`BUILTIN_TABLES`), a CSV/TSV/Parquet file with ``target`` naming the label
    column (None: unlabelled) and ``categorical`` forcing columns categorical, or a ``.npz`` with
    a 2-D ``x`` (data/table.py). ``channels`` and ``image_size`` do not apply to tables;
    ``task`` (classification or regression; None: inferred) applies to tables only.

    ``channels`` (1 or 3) and ``image_size`` default to the source's own (for folders: 3, and
    the median shorter side of a sample of its images, at most 64: `folder.native_size`).
    In-memory sources are converted once; folders convert each image as it is decoded.
    """
    if channels is not None and channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    if image_size is not None and image_size < 1:
        raise DataError(f"image_size must be a positive number of pixels, got {image_size}")
    path = Path(spec).expanduser()
    if spec in BUILTIN_TABLES:
        return builtin_table(spec, task)
    if path.is_file() and is_table_path(path):
        return load_table_file(path, target, categorical, task)
    npz = path.is_file() and path.suffix.lower() == ".npz"
    if task == "regression" and not npz:
        raise DataError(f"{spec} holds images with class labels; --task regression applies to "
                        "tables")
    if spec in NAMED:
        source = NAMED[spec]()
    elif is_shard_spec(spec):
        return dataclasses.replace(
            load_shards(spec, channels or FOLDER_CHANNELS, image_size or FOLDER_IMAGE_SIZE),
            name=spec)
    elif path.is_dir():
        return dataclasses.replace(
            load_folder(path, channels or FOLDER_CHANNELS, image_size),
            name=spec)
    elif npz:
        source = dataclasses.replace(load_npz(path, target, task), name=spec)
        if source.table is not None:
            return source
        if task == "regression":
            raise DataError(f"{spec} holds images with class labels; --task regression applies "
                            "to tables")
    else:
        raise DataError(f"data source '{spec}' not found: give fashion-mnist, digits, a .npz "
                        f"file, an image folder, a CSV or Parquet table or one of the built-in "
                        f"tables ({', '.join(BUILTIN_TABLES)})")
    return conform(source, channels or source.channels, image_size or source.image_size)


def conform(source: DataSource, channels: int, image_size: int) -> DataSource:
    """An in-memory source with its images converted to ``channels`` and ``image_size``."""
    if (channels, image_size) == (source.channels, source.image_size):
        return source

    def convert(split: Split | None) -> Split | None:
        if split is None:
            return None
        return in_memory_split(convert_images(split.images, channels, image_size), split.labels)

    return dataclasses.replace(source, train=convert(source.train), test=convert(source.test),
                               channels=channels, image_size=image_size)


def convert_images(images: torch.Tensor, channels: int, image_size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, channels, image_size, image_size)."""
    out = torch.empty((len(images), channels, image_size, image_size), dtype=torch.uint8)
    for start in range(0, len(images), RESIZE_CHUNK):
        x = images[start:start + RESIZE_CHUNK].float()
        if x.shape[1] == 3 and channels == 1:
            x = torch.einsum("nchw,c->nhw", x, torch.tensor(LUMA))[:, None]
        if x.shape[-1] != image_size:
            x = F.interpolate(x, size=(image_size, image_size), mode="bilinear",
                              antialias=True, align_corners=False)
        # Repeating gray after the resize is the same image for a third of the work.
        out[start:start + RESIZE_CHUNK] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def load_source_for(spec: str, preprocessing) -> DataSource:
    """``spec`` as an encoder with ``preprocessing`` reads it: images converted to its channels
    and input size; a table's columns and category codes aligned to those it was fitted on
    (`table.align_table`), its label column the one it was trained without, read as the same
    task, and its categorical columns categorical again."""
    if preprocessing.modality == "table":
        categorical = tuple(c for c, k in zip(preprocessing.columns, preprocessing.kinds,
                                              strict=True) if k == "categorical")
        source = load_source(spec, target=preprocessing.target, categorical=categorical,
                             task=preprocessing.task)
        if source.table is None:
            raise DataError(f"{spec} holds images; this encoder reads table rows")
        return align_table(source, preprocessing.columns, preprocessing.kinds,
                           preprocessing.categories)
    source = load_source(spec, channels=preprocessing.channels,
                         image_size=preprocessing.input_size)
    if source.table is not None:
        raise DataError(f"{spec} is a table; this encoder reads images")
    return source
