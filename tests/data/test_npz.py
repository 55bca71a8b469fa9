import numpy as np
import pytest
import torch

from selfsup.data import DataError, load_source


@pytest.fixture
def images_nchw():
    return np.random.default_rng(0).integers(0, 256, (5, 3, 6, 6), dtype=np.uint8)


@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw"])
def test_three_layouts(tmp_path, images_nchw, layout):
    x = {"nhw": images_nchw[:, 0], "nhwc": images_nchw.transpose(0, 2, 3, 1),
         "nchw": images_nchw}[layout]
    path = tmp_path / "set.npz"
    np.savez(path, x=x, y=np.arange(5))
    source = load_source(str(path))
    expected = images_nchw[:, :1] if layout == "nhw" else images_nchw
    assert torch.equal(source.train.images, torch.from_numpy(expected))
    assert source.train.labels.tolist() == [0, 1, 2, 3, 4]
    assert (source.channels, source.image_size, source.name) == (expected.shape[1], 6, str(path))
    assert source.test is None


def test_float_in_unit_range(tmp_path):
    path = tmp_path / "float.npz"
    np.savez(path, x=np.array([0.0, 0.5, 1.0, 0.25], np.float32).reshape(1, 2, 2))
    source = load_source(str(path))
    assert source.train.images.flatten().tolist() == [0, 128, 255, 64]
    assert source.train.labels is None
    assert source.train.dataset[0][1] == -1


def test_test_split_and_class_names(tmp_path, images_nchw):
    path = tmp_path / "split.npz"
    np.savez(path, x=images_nchw, y=np.arange(5) % 2, x_test=images_nchw[:2],
             y_test=np.array([1, 0]), classes=np.array(["cat", "dog"]))
    source = load_source(str(path))
    assert len(source.test) == 2 and source.test.labels.tolist() == [1, 0]
    assert source.classes == ["cat", "dog"]


@pytest.mark.parametrize("x, match", [
    (np.zeros((4, 5, 6), np.uint8), "not square"),
    (np.zeros((4, 2, 6, 6), np.uint8), "shape"),
    (np.zeros((4,), np.uint8), "shape"),
    (np.full((2, 4, 4), 2.0), r"\[2, 2\]"),
    (np.zeros((2, 4, 4), np.int32) + 300, "outside 0..255"),
    (np.zeros((2, 4, 4), bool), "dtype"),
])
def test_bad_arrays_explain_the_expected_shapes(tmp_path, x, match):
    path = tmp_path / "bad.npz"
    np.savez(path, x=x)
    with pytest.raises(DataError, match=match) as err:
        load_source(str(path))
    assert "(N, H, W), (N, H, W, C) or (N, C, H, W)" in str(err.value)


def test_missing_x_and_bad_labels(tmp_path):
    np.savez(tmp_path / "nox.npz", images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataError, match="no array named 'x'"):
        load_source(str(tmp_path / "nox.npz"))
    np.savez(tmp_path / "y.npz", x=np.zeros((2, 4, 4), np.uint8), y=np.arange(3))
    with pytest.raises(DataError, match="one per image"):
        load_source(str(tmp_path / "y.npz"))


def test_not_a_zip(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="broken.npz"):
        load_source(str(path))


def test_missing_source_lists_the_choices(tmp_path):
    with pytest.raises(DataError, match="not found: give fashion-mnist, digits, a .npz"):
        load_source(str(tmp_path / "nowhere.npz"))


def test_rgb_to_one_channel_is_luminance(tmp_path):
    x = np.zeros((1, 2, 2, 3), np.uint8)
    x[..., 0] = 255  # pure red: 0.299 * 255
    np.savez(tmp_path / "red.npz", x=x)
    source = load_source(str(tmp_path / "red.npz"), channels=1)
    assert source.train.images.shape == (1, 1, 2, 2)
    assert source.train.images.unique().tolist() == [76]
