"""The bad-input corpus, generated here: every kind of broken or odd file in one folder.

Broken files are skipped and counted in one warning; odd but valid ones (16-bit, RGBA, palette,
1x1) are converted and kept; nothing ends in a traceback, through the library or the CLI.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from selfsup.cli import EXIT_USAGE, main
from selfsup.data import load_source

ROOT = os.geteuid() == 0  # root reads a chmod 000 file, so there it is a good file


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path) -> None:
    """A valid PNG header claiming 100000 x 100000 pixels: a decompression bomb's size, 60 bytes."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
                     + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def noise(side: int = 32, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (side, side, channels), dtype=np.uint8)


def truncated(path: Path, fmt: str) -> None:
    Image.fromarray(noise()).save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def corpus(root: Path) -> tuple[set[str], set[str]]:
    """Writes the corpus; returns (names that must be skipped, names that must be kept)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.fromarray(noise()).save(root / f"good{i}.png")
    truncated(root / "truncated.png", "PNG")
    truncated(root / "truncated.jpg", "JPEG")
    (root / "zero_bytes.png").write_bytes(b"")
    (root / "text.png").write_text("this is not an image")
    bomb_png(root / "bomb.png")
    os.symlink(root / "loop.png", root / "loop.png")  # a link to itself: ELOOP on open
    os.symlink(root, root / "dir_loop")  # a folder link back up: never walked
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).save(
        root / "sixteen_bit.png")
    Image.fromarray(noise(channels=4), "RGBA").save(root / "rgba.png")
    Image.fromarray(noise()).convert("P", palette=Image.ADAPTIVE).save(root / "palette.png")
    Image.new("RGB", (1, 1), (9, 99, 199)).save(root / "one_pixel.png")
    Image.fromarray(noise()).save(root / "unreadable.png")
    (root / "unreadable.png").chmod(0)
    bad = {"truncated.png", "truncated.jpg", "zero_bytes.png", "text.png", "bomb.png", "loop.png"}
    good = {"good0.png", "good1.png", "good2.png", "sixteen_bit.png", "rgba.png", "palette.png",
            "one_pixel.png"}
    (good if ROOT else bad).add("unreadable.png")
    return bad, good


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "corpus"
    bad, good = corpus(root)
    yield root, bad, good
    (root / "unreadable.png").chmod(0o644)


def test_every_bad_file_is_counted_and_every_odd_one_kept(folder):
    root, bad, good = folder
    with pytest.warns(UserWarning) as record:
        source = load_source(str(root), image_size=16)
    assert source.skipped == len(bad)
    assert {Path(p).name for p in source.train.paths} == good
    messages = [str(r.message) for r in record]
    assert messages[0].startswith(f"skipped {len(bad)} of {len(bad) + len(good)} files in {root}")
    for i in range(len(source.train)):
        image, _ = source.train.dataset[i]  # each kept file decodes: none fails late
        assert image.shape == (3, 16, 16) and image.dtype.is_floating_point is False


def test_truncated_jpeg_is_caught_at_index_time_and_trailing_bytes_are_not(tmp_path):
    Image.fromarray(noise()).save(tmp_path / "whole.jpg")
    (tmp_path / "trailing.jpg").write_bytes((tmp_path / "whole.jpg").read_bytes() + b"EXTRA")
    truncated(tmp_path / "cut.jpg", "JPEG")
    with pytest.warns(UserWarning, match=r"skipped 1 of 3 .*\(e.g. cut.jpg\)"):
        source = load_source(str(tmp_path))
    assert sorted(Path(p).name for p in source.train.paths) == ["trailing.jpg", "whole.jpg"]


def test_cli_trains_on_the_corpus_and_reports_the_skips(folder, tmp_path):
    root, bad, good = folder
    proc = subprocess.run(
        [sys.executable, "-m", "selfsup.cli", "pretrain", "--data", str(root), "--epochs", "1",
         "--batch-size", "4", "--image-size", "16", "--precision", "32", "--run-dir",
         str(tmp_path / "run"), "--no-progress", "--no-eval"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"skipped {len(bad)} of {len(bad) + len(good)} files" in proc.stderr


@pytest.mark.parametrize("kind", ["empty", "only_bad"])
def test_cli_names_an_empty_or_all_bad_folder(kind, tmp_path, capsys):
    root = tmp_path / kind
    root.mkdir()
    if kind == "only_bad":
        truncated(root / "a.png", "PNG")
        (root / "b.png").write_bytes(b"")
        (root / "c.jpg").write_text("text")
    code = main(["pretrain", "--data", str(root), "--run-dir", str(tmp_path / "run"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and f"no readable images in {root}" in err
    assert ("(3 files skipped)" if kind == "only_bad" else "no .png/.jpg") in err
