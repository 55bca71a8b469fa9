import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from selfsup.data import DataError, collate_images, load_source, stratified_holdout


def save(path: Path, color=(200, 30, 30), size=(8, 8), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def noise_png(path: Path, side: int = 32) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path.read_bytes()


def quiet_load(spec, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean folder must load without warnings
        return load_source(str(spec), **kwargs)


def test_class_folders_become_labels(tmp_path):
    for name, n in (("cat", 2), ("dog", 3)):
        for i in range(n):
            save(tmp_path / name / f"{i}.png")
    save(tmp_path / "dog" / "nested" / "deep.jpg")
    source = quiet_load(tmp_path)
    assert source.classes == ["cat", "dog"]
    assert source.train.labels.tolist() == [0, 0, 1, 1, 1, 1]
    assert source.test is None and source.skipped == 0
    assert len(source.train.paths) == 6 and source.train.images is None
    image, label = source.train.dataset[0]
    # the folder's own size: its images are 8 px
    assert image.shape == (3, 8, 8) and image.dtype == torch.uint8 and label == 0


@pytest.mark.parametrize(("sizes", "expected"), [
    ([(32, 32)] * 3 + [(500, 400)], 32),  # CIFAR-like: the median, not the odd large one
    ([(40, 30), (30, 40), (44, 44)], 28),  # shorter sides 30, 30, 44: 30 rounds down to 28
    ([(300, 200)] * 2, 64),  # photos: capped at 64 px
    ([(50, 50)], 48),  # above 32 px a multiple of 8
    ([(3, 3)], 8),  # at least 8 px
])
def test_default_size_is_the_folders_median_side(tmp_path, sizes, expected):
    for i, size in enumerate(sizes):
        save(tmp_path / f"{i}.png", size=size)
    assert quiet_load(tmp_path).image_size == expected
    assert quiet_load(tmp_path).train.dataset[0][0].shape[-1] == expected
    assert quiet_load(tmp_path, image_size=16).image_size == 16  # given, it wins


@pytest.mark.parametrize("test_name", ["test", "val"])
def test_train_test_layout_shares_the_class_mapping(tmp_path, test_name):
    for name in ("a", "b", "c"):
        save(tmp_path / "train" / name / "1.png")
    save(tmp_path / test_name / "c" / "1.png")
    save(tmp_path / test_name / "a" / "1.png")
    source = quiet_load(tmp_path)
    assert source.classes == ["a", "b", "c"]
    assert source.train.labels.tolist() == [0, 1, 2]
    assert source.test.labels.tolist() == [0, 2]


def test_test_class_unknown_to_train_is_an_error(tmp_path):
    save(tmp_path / "train" / "a" / "1.png")
    save(tmp_path / "test" / "zebra" / "1.png")
    with pytest.raises(DataError, match="zebra"):
        load_source(str(tmp_path))


def test_flat_test_folder_beside_class_folders_is_an_error(tmp_path):
    save(tmp_path / "train" / "a" / "1.png")
    save(tmp_path / "val" / "1.png")
    with pytest.raises(DataError, match="no class folders"):
        load_source(str(tmp_path))


def test_train_folder_alone_is_the_train_split(tmp_path):
    save(tmp_path / "train" / "a" / "1.png")
    source = quiet_load(tmp_path)
    assert source.classes == ["a"] and source.test is None


def test_loose_images_beside_class_folders_are_reported(tmp_path):
    save(tmp_path / "a" / "1.png")
    save(tmp_path / "stray.png")
    with pytest.warns(UserWarning, match="ignored 1 image"):
        assert len(load_source(str(tmp_path)).train) == 1


def test_flat_folder_is_unlabeled(tmp_path):
    for i in range(3):
        save(tmp_path / f"{i}.PNG")
    (tmp_path / "notes.txt").write_text("not an image, not a candidate")
    source = quiet_load(tmp_path, channels=1, image_size=16)
    assert source.train.labels is None and source.classes is None
    assert len(source.train) == 3
    image, label = source.train.dataset[1]
    assert image.shape == (1, 16, 16) and label == -1


def test_bad_files_are_skipped_with_one_warning(tmp_path):
    for i in range(3):
        save(tmp_path / f"good{i}.png")
    whole = noise_png(tmp_path / "bad_half.png")
    (tmp_path / "bad_half.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "bad_header.png").write_bytes(whole[:20])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello, I am not a JPEG")
    with pytest.warns(UserWarning) as record:
        source = load_source(str(tmp_path))
    assert len(source.train) == 3 and source.skipped == 4
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith(f"skipped 4 of 7 files in {tmp_path}: unreadable or not images")
    assert message.count(".png") + message.count(".jpg") == 3


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_unreadable_file_is_skipped(tmp_path):
    save(tmp_path / "ok.png")
    locked = save(tmp_path / "locked.png")
    locked.chmod(0)
    try:
        with pytest.warns(UserWarning, match="skipped 1 of 2"):
            assert len(load_source(str(tmp_path)).train) == 1
    finally:
        locked.chmod(0o644)


def test_permission_error_is_a_skip_even_as_root(tmp_path, monkeypatch):
    save(tmp_path / "ok.png")
    locked = save(tmp_path / "locked.png")
    real_open = Image.open

    def refuse_locked(path, *args, **kwargs):
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", refuse_locked)
    with pytest.warns(UserWarning, match=r"skipped 1 of 2 .*\(e.g. locked.png\)"):
        assert len(load_source(str(tmp_path)).train) == 1


def test_sixteen_bit_png_is_rescaled_not_clipped(tmp_path):
    for value in (0, 257, 32896, 65535):
        Image.fromarray(np.full((2, 2), value, np.uint16)).save(tmp_path / f"{value:05d}.png")
    assert Image.open(tmp_path / "32896.png").mode.startswith("I")
    dataset = quiet_load(tmp_path, channels=1, image_size=2).train.dataset
    assert [int(dataset[i][0][0, 0, 0]) for i in range(4)] == [0, 1, 128, 255]


def test_transparent_pixels_become_white(tmp_path):
    Image.new("RGBA", (4, 4), (10, 20, 30, 0)).save(tmp_path / "clear.png")
    image, _ = quiet_load(tmp_path, image_size=4).train.dataset[0]
    assert (image == 255).all()


def test_palette_image(tmp_path):
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 10, 200, 40] + [0] * 762)
    palette.save(tmp_path / "p.gif")
    image, _ = quiet_load(tmp_path, image_size=4).train.dataset[0]
    assert image[:, 0, 0].tolist() == [10, 200, 40]


def test_tiny_image_is_resized(tmp_path):
    save(tmp_path / "dot.png", color=(1, 2, 3), size=(1, 1))
    image, _ = quiet_load(tmp_path, image_size=24).train.dataset[0]
    assert image.shape == (3, 24, 24)
    assert image[:, 12, 12].tolist() == [1, 2, 3]


def test_shorter_side_resized_then_center_cropped(tmp_path):
    im = Image.new("L", (30, 10), 0)
    im.paste(255, (10, 0, 20, 10))  # white center square, black wings
    im.save(tmp_path / "wide.png")
    image, _ = quiet_load(tmp_path, channels=1, image_size=5).train.dataset[0]
    assert image.shape == (1, 5, 5)
    assert (image[0, :, 1:4] == 255).all() and (image > 200).all()  # no black wing shows


def test_channel_conversion(tmp_path):
    save(tmp_path / "gray" / "g.png", color=77, mode="L")
    save(tmp_path / "rgb" / "r.png", color=(255, 0, 0))
    rgb = quiet_load(tmp_path, channels=3, image_size=4).train.dataset
    assert rgb[0][0][:, 0, 0].tolist() == [77, 77, 77]
    gray = quiet_load(tmp_path, channels=1, image_size=4).train.dataset
    assert gray[1][0].shape == (1, 4, 4) and gray[1][0][0, 0, 0] == 76  # 0.299 * 255


def test_symlink_loop_does_not_hang(tmp_path):
    save(tmp_path / "a" / "1.png")
    os.symlink(tmp_path / "a", tmp_path / "a" / "loop")
    os.symlink(tmp_path, tmp_path / "up")
    source = quiet_load(tmp_path)
    assert source.classes == ["a"] and len(source.train) == 1


def test_empty_folder_names_the_path(tmp_path):
    with pytest.raises(DataError, match=f"no readable images in {tmp_path}"):
        load_source(str(tmp_path))


def test_all_bad_folder_names_the_path(tmp_path):
    for i in range(4):
        (tmp_path / f"{i}.png").write_bytes(b"nope")
    with pytest.raises(DataError, match=rf"no readable images in {tmp_path} \(4 files skipped\)"):
        load_source(str(tmp_path))


def test_file_that_fails_at_decode_is_dropped(tmp_path):
    for i in range(2):
        save(tmp_path / f"{i}.png")
    source = quiet_load(tmp_path, image_size=8)
    Path(source.train.paths[0]).write_bytes(b"changed after indexing")
    assert source.train.dataset[0] is None
    loader = DataLoader(source.train.dataset, batch_size=2, collate_fn=source.train.collate_fn)
    images, labels = next(iter(loader))
    assert images.shape == (1, 3, 8, 8) and labels.tolist() == [-1]
    assert source.train.collate_fn is collate_images


def test_holdout_of_a_folder(tmp_path):
    for name in ("x", "y"):
        for i in range(5):
            save(tmp_path / name / f"{i}.png")
    train, test = stratified_holdout(quiet_load(tmp_path, image_size=4).train, fraction=0.4)
    assert sorted(test.labels.tolist()) == [0, 0, 1, 1] and len(train) == 6
    assert len(test.paths) == 4 and test.dataset[0][0].shape == (3, 4, 4)
    assert set(test.paths).isdisjoint(train.paths)


def test_decompression_bomb_is_skipped_quietly(tmp_path):
    save(tmp_path / "ok.png")
    # 95 M pixels: past Pillow's warning threshold, yet 1-bit zeros keep the file tiny.
    Image.new("1", (10_000, 9_500), 0).save(tmp_path / "bomb.png")
    with pytest.warns(UserWarning) as record:
        source = load_source(str(tmp_path))
    assert len(source.train) == 1 and source.skipped == 1
    assert [str(r.message) for r in record] == [
        f"skipped 1 of 2 files in {tmp_path}: unreadable or not images (e.g. bomb.png)"]


@pytest.mark.parametrize("name, fmt, mode", [
    ("a.ppm", "PPM", "RGB"), ("a.pgm", "PPM", "L"), ("a.pbm", "PPM", "1"),
    ("a.tga", "TGA", "RGB"), ("a.ico", "ICO", "RGB"), ("A.PNG", "PNG", "RGB"),
    ("B.JPEG", "JPEG", "RGB"), ("C.TGA", "TGA", "RGB"), ("no_extension", "PNG", "RGB"),
    ("jpeg_no_extension", "JPEG", "RGB"),
])
def test_every_format_pillow_decodes_is_read(tmp_path, name, fmt, mode):
    pixels = np.full((12, 12, 3), (200, 40, 90), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(tmp_path / name, format=fmt)
    save(tmp_path / "other.png")
    source = quiet_load(tmp_path, image_size=8)
    assert sorted(Path(p).name for p in source.train.paths) == sorted([name, "other.png"])
    image, _ = source.train.dataset[source.train.paths.index(str(tmp_path / name))]
    assert image.shape == (3, 8, 8) and image.dtype == torch.uint8


def test_files_without_extension_that_are_no_images_are_left_out_quietly(tmp_path):
    save(tmp_path / "a.png")
    (tmp_path / "LICENSE").write_text("MIT, not an image")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))  # data, not pixels
    source = quiet_load(tmp_path)
    assert [Path(p).name for p in source.train.paths] == ["a.png"] and source.skipped == 0


def test_a_damaged_image_without_extension_is_counted(tmp_path):
    save(tmp_path / "a.png")
    whole = noise_png(tmp_path / "cut.png")
    (tmp_path / "cut.png").unlink()
    (tmp_path / "cut").write_bytes(whole[: len(whole) // 2])
    with pytest.warns(UserWarning, match=r"skipped 1 of 2 .*\(e.g. cut\)"):
        source = load_source(str(tmp_path))
    assert len(source.train) == 1


def test_a_folder_of_other_files_says_what_it_saw(tmp_path):
    for i in range(12):
        (tmp_path / f"{i}.txt").write_text("notes")
    for i in range(3):
        (tmp_path / "sub" / f"{i}.CSV").parent.mkdir(exist_ok=True)
        (tmp_path / "sub" / f"{i}.CSV").write_text("a,b")
    (tmp_path / "README").write_text("no extension, no image")
    with pytest.raises(DataError) as err:
        load_source(str(tmp_path))
    message = str(err.value)
    assert message.startswith(f"no readable images in {tmp_path} (saw 12 .txt, ")
    assert "3 .csv" in message and "1 (no extension)" in message
    assert "put images in it" in message and "\n" not in message


def test_the_index_opens_only_image_named_and_unnamed_files(tmp_path, monkeypatch):
    import selfsup.data.folder as folder

    save(tmp_path / "a.png")
    (tmp_path / "b.json").write_text("{}")
    (tmp_path / "c").write_text("unnamed")
    opened = []
    real = folder.check_image
    monkeypatch.setattr(folder, "check_image", lambda p: opened.append(Path(p).name) or real(p))
    quiet_load(tmp_path)
    assert sorted(opened) == ["a.png", "c"]


def test_large_folders_sniff_signatures_instead_of_opening(tmp_path, monkeypatch):
    import selfsup.data.folder as folder

    monkeypatch.setattr(folder, "FULL_CHECK_LIMIT", 2)  # this folder counts as large
    for i in range(3):
        save(tmp_path / f"{i}.png", size=(8, 8))
    whole = (tmp_path / "0.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])  # signature intact
    (tmp_path / "notes.png").write_text("not an image")  # no signature: opened, refused
    (tmp_path / "gray.pgm").write_bytes(b"P5\n2 2\n255\n" + bytes(4))
    with pytest.warns(UserWarning, match="1"):
        source = load_source(str(tmp_path), image_size=8)
    names = sorted(os.path.basename(p) for p in source.train.paths)
    assert names == ["0.png", "1.png", "2.png", "cut.png", "gray.pgm"]
    assert source.skipped == 1
    # the truncated file passed the sniff; it is dropped when it fails to decode
    assert source.train.dataset[names.index("cut.png")] is None


def test_a_folder_indexed_again_is_not_checked_again_until_a_file_changes(tmp_path,
                                                                          monkeypatch):
    # one pretrain command indexes its folder for training, evaluation and the report
    import selfsup.data.folder as folder

    for i in range(3):
        save(tmp_path / f"{i}.png")
    (tmp_path / "bad.png").write_text("not yet an image")
    checked = []
    real = folder._check_image
    monkeypatch.setattr(folder, "_check_image",
                        lambda p, size: checked.append(Path(p).name) or real(p, size))
    with pytest.warns(UserWarning, match="skipped 1 of 4"):
        load_source(str(tmp_path))
    assert sorted(checked) == ["0.png", "1.png", "2.png", "bad.png"]
    checked.clear()
    with pytest.warns(UserWarning, match="skipped 1 of 4"):  # the same verdicts, remembered
        load_source(str(tmp_path))
    assert checked == []
    save(tmp_path / "bad.png", size=(9, 9))  # rewritten: another size and mtime
    source = quiet_load(tmp_path)
    assert checked == ["bad.png"] and source.skipped == 0 and len(source.train) == 4


def test_an_image_named_for_another_format_is_still_read(tmp_path):
    save(tmp_path / "a.png")
    save(tmp_path / "b.png").rename(tmp_path / "b.jpg")  # PNG bytes under a JPEG name
    source = quiet_load(tmp_path)
    assert source.skipped == 0 and len(source.train) == 2
    assert all(source.train.dataset[i] is not None for i in range(2))
