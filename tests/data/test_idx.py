import gzip
from pathlib import Path

import numpy as np
import pytest

from selfsup.data import DataError, load_source
from selfsup.data.idx import FASHION_MNIST_FILES, SYSTEM_DIR, read_idx


def write_idx(path: Path, array: np.ndarray, magic_type: int = 0x08) -> None:
    header = bytes([0, 0, magic_type, array.ndim]) + np.array(array.shape, ">i4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_tiny_fashion_mnist(folder: Path, n_train: int = 6, n_test: int = 4) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = (rng.integers(0, 256, (n_train, 28, 28)), np.arange(n_train) % 10,
              rng.integers(0, 256, (n_test, 28, 28)), np.arange(n_test) % 10)
    for name, array in zip(FASHION_MNIST_FILES, arrays, strict=True):
        write_idx(folder / name, array)


def test_installed_fashion_mnist(monkeypatch):
    monkeypatch.delenv("SELFSUP_DATA_DIR", raising=False)
    if not all((SYSTEM_DIR / name).is_file() for name in FASHION_MNIST_FILES):
        pytest.skip("apt-get install dataset-fashion-mnist to run this")
    source = load_source("fashion-mnist")
    assert source.train.images.shape == (60000, 1, 28, 28)
    assert source.test.images.shape == (10000, 1, 28, 28)
    assert str(source.train.images.dtype) == "torch.uint8"
    assert source.train.labels.dtype == np.int64 and source.train.labels.shape == (60000,)
    assert source.train.labels.min() == 0 and source.train.labels.max() == 9
    assert np.bincount(source.test.labels).tolist() == [1000] * 10
    assert (source.channels, source.image_size, len(source.classes)) == (1, 28, 10)
    assert source.classes[0] == "T-shirt/top" and source.classes[-1] == "Ankle boot"


def test_data_dir_override(tmp_path, monkeypatch):
    write_tiny_fashion_mnist(tmp_path / "fashion-mnist")
    monkeypatch.setenv("SELFSUP_DATA_DIR", str(tmp_path))
    source = load_source("fashion-mnist")
    assert source.train.images.shape == (6, 1, 28, 28)
    assert source.test.images.shape == (4, 1, 28, 28)
    assert source.train.labels.tolist() == [0, 1, 2, 3, 4, 5]


def test_writing_into_a_loaded_source_leaves_the_next_load_intact(tmp_path, monkeypatch):
    write_tiny_fashion_mnist(tmp_path)
    monkeypatch.setenv("SELFSUP_DATA_DIR", str(tmp_path))
    first = load_source("fashion-mnist")
    original = first.train.images.clone()
    first.train.images.zero_()
    assert (load_source("fashion-mnist").train.images == original).all()


def test_missing_files_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFSUP_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_source("fashion-mnist")


def test_bad_magic_names_the_file(tmp_path):
    path = tmp_path / "bad.gz"
    write_idx(path, np.zeros((2, 3, 3)), magic_type=0x0D)
    with pytest.raises(DataError, match="bad.gz"):
        read_idx(path, 3)


def test_not_gzip_names_the_file(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="plain.gz"):
        read_idx(path, 1)


def test_header_disagreeing_with_size(tmp_path):
    path = tmp_path / "short.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + np.array([10], ">i4").tobytes() + b"\x01\x02")
    with pytest.raises(DataError, match="header"):
        read_idx(path, 1)
