import numpy as np
import torch

from selfsup.data import load_source


def test_digits_in_memory_uint8():
    source = load_source("digits")
    assert source.train.images.shape == (1797, 1, 8, 8)
    assert source.train.images.dtype == torch.uint8
    assert int(source.train.images.min()) == 0 and int(source.train.images.max()) == 255
    assert source.test is None
    assert source.classes == [str(d) for d in range(10)]
    assert source.train.labels.dtype == np.int64 and set(source.train.labels) == set(range(10))


def test_digits_scaled_from_sixteen_levels():
    # 0..16 counts map to round(v * 255 / 16): every pixel is one of 17 values.
    values = torch.unique(load_source("digits").train.images).tolist()
    assert values == [round(v * 255 / 16) for v in range(17)]


def test_digits_resized_and_to_three_channels():
    source = load_source("digits", channels=3, image_size=16)
    assert source.train.images.shape == (1797, 3, 16, 16)
    assert (source.channels, source.image_size) == (3, 16)
    rgb = source.train.images
    assert (rgb[:, 0] == rgb[:, 1]).all() and (rgb[:, 1] == rgb[:, 2]).all()
