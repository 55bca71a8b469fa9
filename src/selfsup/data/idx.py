"""Fashion-MNIST from its four idx files (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747)."""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from .split import DataError, DataSource, in_memory_split

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                       "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
UBYTE = 0x08


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An idx file (LeCun's MNIST format, gzipped) of unsigned bytes with ``ndim`` dimensions.

    Header: two zero bytes, a type code (0x08 = ubyte), the number of dimensions, then each
    dimension as a big-endian int32.
    """
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read {path} ({e}): download it again") from e
    if (len(raw) < 4 + 4 * ndim or raw[0] != 0 or raw[1] != 0 or raw[2] != UBYTE
            or raw[3] != ndim):
        raise DataError(f"{path} is not an idx file of {ndim}-d unsigned bytes "
                        "(bad magic number): download it again")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} holds {data.size} bytes but its header says {shape}: "
                        "download it again")
    return data.reshape(shape)


def fashion_mnist_dir() -> Path:
    """Where the four files are: ``$SELFSUP_DATA_DIR`` (or its fashion-mnist/), else the
    system copy."""
    override = os.environ.get("SELFSUP_DATA_DIR")
    candidates = ([Path(override), Path(override) / "fashion-mnist"] if override
                  else [SYSTEM_DIR])
    for folder in candidates:
        if all((folder / name).is_file() for name in FASHION_MNIST_FILES):
            return folder
    where = (f"SELFSUP_DATA_DIR={override} (or its fashion-mnist/)" if override
             else str(SYSTEM_DIR))
    raise DataError(f"fashion-mnist files not found in {where}: run "
                    "`apt-get install dataset-fashion-mnist` or set SELFSUP_DATA_DIR to a "
                    f"folder holding {', '.join(FASHION_MNIST_FILES)}")


@functools.lru_cache(maxsize=2)
def _parsed(folder: Path) -> tuple[np.ndarray, ...]:
    # Parsing 60k images takes a noticeable fraction of a second; tests and
    # pretrain-then-evaluate load the source several times per process.
    dims = (3, 1, 3, 1)  # images, labels, images, labels
    train_x, train_y, test_x, test_y = (
        read_idx(folder / name, ndim) for name, ndim in zip(FASHION_MNIST_FILES, dims, strict=True))
    for x, y, part in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
        if len(x) != len(y):
            raise DataError(f"{folder}: {part} has {len(x)} images but {len(y)} labels: "
                            "download the files again")
    return train_x, train_y, test_x, test_y


def load_fashion_mnist() -> DataSource:
    """Fashion-MNIST in memory: train (60000, 1, 28, 28), test (10000, 1, 28, 28), uint8."""
    train_x, train_y, test_x, test_y = _parsed(fashion_mnist_dir())
    # Copies, so a caller writing into its tensors cannot corrupt the cached arrays.
    train = in_memory_split(torch.tensor(train_x[:, None]), train_y.astype(np.int64))
    test = in_memory_split(torch.tensor(test_x[:, None]), test_y.astype(np.int64))
    side = train_x.shape[-1]
    return DataSource("fashion-mnist", train, test, channels=1, image_size=side,
                      classes=list(FASHION_MNIST_CLASSES))
