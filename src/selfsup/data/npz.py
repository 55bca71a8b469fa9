"""Arrays in a ``.npz`` file: ``x`` and optional ``y``, ``x_test``, ``y_test``, ``classes``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from .split import DataError, DataSource, Split, in_memory_split

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
    """Integer labels (n,) as int64, or None when the file has no ``key``."""
    if key not in arrays:
        return None
    y = arrays[key]
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or (n and y.min() < 0):
        raise DataError(f"{path}: {key} must be {n} non-negative integer labels, one per "
                        f"image; got {y.dtype} shaped {y.shape}")
    return y.astype(np.int64)


def load_npz(path: Path) -> DataSource:
    """The arrays of ``path`` in memory; ``x_test`` (with ``y_test``) becomes the test split."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            arrays = {key: arrays[key] for key in arrays.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"cannot read {path} as a .npz file ({e}): save it with numpy.savez") \
            from e
    if "x" not in arrays:
        raise DataError(f"{path} has no array named 'x' (it has {sorted(arrays)}): "
                        "save images as x=..., labels as y=...")
    splits: list[Split] = []
    for x_key, y_key in (("x", "y"), ("x_test", "y_test")):
        if x_key not in arrays:
            continue
        images = images_nchw(arrays[x_key], path, x_key)
        splits.append(in_memory_split(images, labels_of(arrays, y_key, len(images), path)))
    train, test = splits[0], (splits[1] if len(splits) > 1 else None)
    if test is not None and test.images.shape[1:] != train.images.shape[1:]:
        raise DataError(f"{path}: x_test images are {tuple(test.images.shape[1:])} but x images "
                        f"are {tuple(train.images.shape[1:])}; give both the same (C, H, W)")
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
    return DataSource(str(path), train, test, channels=train.images.shape[1],
                      image_size=train.images.shape[-1], classes=classes)
