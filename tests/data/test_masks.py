"""Sources with object masks: .npz masks, an images/ + masks/ folder twin, foregrounds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from selfsup.data import DataError
from selfsup.data.masks import FOREGROUND, load_masked_images


def test_npz_masks_resize_nearest_and_test_split_preferred(tmp_path):
    x = np.zeros((3, 8, 8), np.uint8)
    masks = np.zeros((3, 8, 8), bool)
    masks[:, 2:6, 2:6] = True
    path = tmp_path / "a.npz"
    np.savez(path, x=x, masks=masks, x_test=x[:2], masks_test=masks[:2])
    out = load_masked_images(str(path), channels=3, size=16)
    assert out.images.shape == (2, 3, 16, 16) and out.masks.shape == (2, 16, 16)
    assert out.masks.sum() == 2 * 8 * 8 and out.masks[0, 4:12, 4:12].all()
    assert "masks_test" in out.mask_rule


def test_npz_without_masks_and_mismatched_masks_are_clear(tmp_path):
    np.savez(tmp_path / "plain.npz", x=np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(DataError, match="has no object masks"):
        load_masked_images(str(tmp_path / "plain.npz"), 1, 8)
    np.savez(tmp_path / "bad.npz", x=np.zeros((2, 8, 8), np.uint8),
             masks=np.zeros((2, 4, 4), bool))
    with pytest.raises(DataError, match="one \\(H, W\\) mask per image"):
        load_masked_images(str(tmp_path / "bad.npz"), 1, 8)


def test_folder_twin_counts_images_without_a_mask(tmp_path):
    (tmp_path / "images" / "cats").mkdir(parents=True)
    (tmp_path / "masks" / "cats").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (10, 10), (200, 0, 0)).save(tmp_path / "images" / "cats" / f"{i}.jpg")
    for i in range(2):  # image 2 has no mask; masks come as .png beside .jpg images
        mask = Image.new("L", (10, 10), 0)
        mask.paste(255, (0, 0, 5, 10))
        mask.save(tmp_path / "masks" / "cats" / f"{i}.png")
    for spec in (tmp_path, tmp_path / "images"):
        out = load_masked_images(str(spec), channels=1, size=10)
        assert out.images.shape == (2, 1, 10, 10) and out.skipped == {"no mask": 1}
        assert out.masks[:, :, :5].all() and not out.masks[:, :, 5:].any()
    with pytest.raises(DataError, match="has no object masks"):
        load_masked_images(str(tmp_path / "images" / "cats"), 1, 10)


def test_digits_foreground_rule():
    out = load_masked_images("digits", channels=1, size=8, limit=50)
    assert len(out.images) == 50
    expected = out.images[:, 0].float() > FOREGROUND * 255
    assert (out.masks == expected).all() and 0 < out.masks.float().mean() < 0.8
