"""scikit-learn's bundled 8x8 handwritten digits (UCI optdigits), 1797 images."""

from __future__ import annotations

import functools

import numpy as np
import torch
from sklearn.datasets import load_digits

from .split import DataSource, in_memory_split


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    # Pixel counts run 0..16; stretch them to the full uint8 range.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8)
    return images, bunch.target.astype(np.int64)


def load_digits_source() -> DataSource:
    """The digits in memory as uint8 (1797, 1, 8, 8); no test split of their own."""
    images, labels = _digits()
    train = in_memory_split(torch.tensor(images[:, None]), labels.copy())
    return DataSource("digits", train, None, channels=1, image_size=8,
                      classes=[str(d) for d in range(10)])
