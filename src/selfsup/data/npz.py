"""Arrays in a ``.npz`` file, in the layouts the field ships: ``x`` with optional ``y``,
``x_test``, ``y_test``, ``classes``; Keras' ``x_train``/``y_train``/``x_test``/``y_test``;
MedMNIST's ``train_images``/``train_labels``/``val_*``/``test_*``. A 2-D ``x`` (N, F) is a
table of numeric features (data/table.py), ``y`` its class labels."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from .split import DataError, DataSource, Split, in_memory_split

# (train images, train labels, test images, test labels), tried in this order. MedMNIST's
# val_images/val_labels are neither trained on nor scored: the benchmark selects models on them.
LAYOUTS = (("x", "y", "x_test", "y_test"),
           ("x_train", "y_train", "x_test", "y_test"),
           ("train_images", "train_labels", "test_images", "test_labels"))
EXPECTED = ("x must be uint8 (or float in [0, 1]) images shaped (N, H, W), (N, H, W, C) or "
            "(N, C, H, W) with C 1 or 3 and H == W")


def images_nchw(x: np.ndarray, path: Path, key: str) -> torch.Tensor:
    """``x`` as uint8 (N, C, H, W), whichever of the three layouts it comes in."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] == x.shape[2]:
        x = x.transpose(0, 3, 1, 2)
    elif not (x.ndim == 4 and x.shape[1] in (1, 3)):
        raise DataError(f"{path}: {key} has shape {x.shape}; {EXPECTED}")
    if x.shape[0] == 0:
        raise DataError(f"{path}: {key} holds no images; {EXPECTED}")
    if x.shape[2] != x.shape[3]:
        raise DataError(f"{path}: {key} images are {x.shape[2]}x{x.shape[3]}, not square; "
                        f"{EXPECTED}")
    if np.issubdtype(x.dtype, np.floating):
        lo, hi = float(np.min(x)), float(np.max(x))
        if not (np.isfinite(lo) and np.isfinite(hi) and 0.0 <= lo and hi <= 1.0):
            raise DataError(f"{path}: float {key} spans [{lo:g}, {hi:g}]; {EXPECTED}")
        x = np.rint(x * 255.0)
    elif np.issubdtype(x.dtype, np.integer) and x.dtype != np.uint8:
        # Integer pixels saved with a wider dtype are fine as long as they fit in a byte.
        if x.min() < 0 or x.max() > 255:
            raise DataError(f"{path}: {key} is {x.dtype} with values outside 0..255; {EXPECTED}")
    elif x.dtype != np.uint8:
        raise DataError(f"{path}: {key} has dtype {x.dtype}; {EXPECTED}")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8))


def labels_of(arrays, key: str, n: int, path: Path) -> np.ndarray | None:
    """Integer labels (n,) as int64, or None when the file has no ``key``; (n, 1) is
    flattened (Keras' CIFAR and MedMNIST save them so)."""
    if key not in arrays:
        return None
    y = arrays[key]
    if y.ndim == 2 and y.shape == (n, 1):
        y = y[:, 0]
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or (n and y.min() < 0):
        raise DataError(f"{path}: {key} must be {n} non-negative integer labels, one per "
                        f"image; got {y.dtype} shaped {y.shape}")
    return y.astype(np.int64)


def load_npz(path: Path, target: str | None = None, task: str | None = None) -> DataSource:
    """The arrays of ``path`` in memory, in the first of `LAYOUTS` it holds; its test images
    (with their labels) become the test split. A 2-D ``x`` makes a table (`npz_table`)."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            arrays = {key: arrays[key] for key in arrays.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"cannot read {path} as a .npz file ({e}): save it with numpy.savez") \
            from e
    layout = next((keys for keys in LAYOUTS if keys[0] in arrays), None)
    if layout is None:
        raise DataError(f"{path} has no array named 'x', 'x_train' or 'train_images' (it has "
                        f"{sorted(arrays)}): save images as x=..., labels as y=...")
    x_key, y_key, x_test_key, y_test_key = layout
    if arrays[x_key].ndim == 2:
        return npz_table(path, arrays, layout, task)
    splits: list[Split] = []
    for images_key, labels_key in ((x_key, y_key), (x_test_key, y_test_key)):
        if images_key not in arrays:
            continue
        images = images_nchw(arrays[images_key], path, images_key)
        splits.append(in_memory_split(images, labels_of(arrays, labels_key, len(images), path)))
    train, test = splits[0], (splits[1] if len(splits) > 1 else None)
    if test is not None and test.images.shape[1:] != train.images.shape[1:]:
        raise DataError(f"{path}: {x_test_key} images are {tuple(test.images.shape[1:])} but "
                        f"{x_key} images are {tuple(train.images.shape[1:])}; give both the "
                        "same (C, H, W)")
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
    return DataSource(str(path), train, test, channels=train.images.shape[1],
                      image_size=train.images.shape[-1], classes=classes)


def npz_table(path: Path, arrays: dict[str, np.ndarray], layout: tuple[str, ...],
              task: str | None = None) -> DataSource:
    """Columns ``x0 .. x{F-1}`` of a 2-D ``x`` with ``y`` as the target (class labels, or any
    numbers for a regression target: ``task``, else inferred), and the test split from
    ``x_test``/``y_test`` when present."""
    from .table import columns_from_array, table_source

    x_key, y_key, x_test_key, y_test_key = layout
    parts = []
    for xk, yk in ((x_key, y_key), (x_test_key, y_test_key)):
        if xk not in arrays:
            continue
        x = arrays[xk]
        if x.ndim != 2:
            raise DataError(f"{path}: {xk} has shape {x.shape}; a table needs 2-D (N, F)")
        columns = columns_from_array(x)
        y = arrays.get(yk)
        if y is not None:
            y = y[:, 0] if y.ndim == 2 and y.shape[1:] == (1,) else y
            if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.number):
                raise DataError(f"{path}: {yk} must be {len(x)} numbers, one per row of {xk}; "
                                f"got {y.dtype} shaped {y.shape}")
            columns["y"] = y.astype(np.float64)
        parts.append(columns)
    if len(parts) > 1 and len(parts[1]) != len(parts[0]):
        raise DataError(f"{path}: {x_test_key} and {x_key} need the same number of columns "
                        "(and y_test with y)")
    return table_source(str(path), parts[0], "y" if "y" in parts[0] else None,
                        test=parts[1] if len(parts) > 1 else None, task=task)
