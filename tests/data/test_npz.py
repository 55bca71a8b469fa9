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


def test_keras_layout(tmp_path, images_nchw):
    path = tmp_path / "mnist.npz"  # keras.datasets saves x_train/y_train/x_test/y_test
    nhwc = images_nchw.transpose(0, 2, 3, 1)
    np.savez(path, x_train=nhwc, y_train=np.arange(5).reshape(5, 1), x_test=nhwc[:2],
             y_test=np.array([[1], [0]]))
    source = load_source(str(path))
    assert torch.equal(source.train.images, torch.from_numpy(images_nchw))
    assert source.train.labels.tolist() == [0, 1, 2, 3, 4]  # (N, 1) as CIFAR ships: flattened
    assert source.test.labels.tolist() == [1, 0] and len(source.test) == 2


@pytest.mark.parametrize("rgb", [False, True])
def test_medmnist_layout(tmp_path, rgb):
    rng = np.random.default_rng(0)
    shape = (6, 28, 28, 3) if rgb else (6, 28, 28)
    arrays = {f"{split}_{kind}": (rng.integers(0, 256, shape, dtype=np.uint8)
                                  if kind == "images" else rng.integers(0, 4, (6, 1)))
              for split in ("train", "val", "test") for kind in ("images", "labels")}
    arrays["test_images"] = arrays["test_images"][:3]
    arrays["test_labels"] = arrays["test_labels"][:3]
    path = tmp_path / "pathmnist.npz"
    np.savez(path, **arrays)
    source = load_source(str(path))
    assert (source.channels, source.image_size) == (3 if rgb else 1, 28)
    assert source.train.labels.tolist() == arrays["train_labels"][:, 0].tolist()
    assert len(source.train) == 6 and len(source.test) == 3  # val_* is not trained on
    expected = arrays["train_images"] if rgb else arrays["train_images"][..., None]
    assert torch.equal(source.train.images, torch.from_numpy(expected.transpose(0, 3, 1, 2)))


def test_unknown_layout_names_the_arrays_it_found(tmp_path):
    np.savez(tmp_path / "odd.npz", pixels=np.zeros((2, 4, 4), np.uint8), targets=np.arange(2))
    with pytest.raises(DataError, match=r"no array named 'x', 'x_train' or 'train_images' "
                                        r"\(it has \['pixels', 'targets'\]\)"):
        load_source(str(tmp_path / "odd.npz"))


def test_multi_label_targets_are_refused_in_one_line(tmp_path):
    np.savez(tmp_path / "chest.npz", train_images=np.zeros((2, 4, 4), np.uint8),
             train_labels=np.zeros((2, 14), np.int64))
    with pytest.raises(DataError, match="train_labels must be 2 non-negative integer labels"):
        load_source(str(tmp_path / "chest.npz"))
