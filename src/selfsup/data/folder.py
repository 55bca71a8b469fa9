"""Image folders: indexed up front, checked cheaply, decoded lazily in DataLoader workers."""

from __future__ import annotations

import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from .split import DataError, DataSource, Split

# Formats Pillow names but cannot decode on its own (stubs for an external handler, Windows-only
# metafiles, Ghostscript for EPS) or that are data rather than pictures (HDF5, GRIB, BUFR).
NOT_DECODABLE = frozenset({"BUFR", "EPS", "GRIB", "HDF5", "IPTC", "MPEG", "WMF"})
NO_EXTENSION = "(no extension)"
# A folder's training size when none is given: the median shorter side of up to SIZE_SAMPLE of
# its images (headers only), at most MAX_FOLDER_SIZE px (CPU cost grows with the square of the
# side; --image-size goes higher), at least MIN_FOLDER_SIZE, rounded down to a multiple of 4
# (8 above 32 px) so every ViT patch size tiles it. CIFAR-10's 32 px trains at 32, not 64.
SIZE_SAMPLE = 256
MAX_FOLDER_SIZE = 64
MIN_FOLDER_SIZE = 8


def pillow_extensions() -> frozenset[str]:
    """Every extension of a format this Pillow opens and decodes itself: PNG, JPEG, PPM/PGM/PBM,
    TGA, ICO, TIFF, WebP, ... (lower case; names are matched case-insensitively)."""
    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items()
                     if fmt in Image.OPEN and fmt not in NOT_DECODABLE)


IMAGE_EXTENSIONS = pillow_extensions()
# 8192 x 8192: above any photo a pretraining set needs, below Pillow's own bomb limit so a
# file that passed the index check never trips Pillow's warning when decoded.
MAX_PIXELS = 1 << 26
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
TEST_FOLDERS = ("test", "val")
CHECK_THREADS = 16  # checking is I/O bound; threads hide file-system latency
CHECK_BATCH = 256  # files per task: one future per file costs more than a header check
# Up to this many files every one is opened by Pillow and verified when the folder is indexed
# (~110 us a file here: 11 s per 100,000); past it a file whose first bytes carry a known image
# signature is kept unopened (~12 us), so a million files index in seconds, not minutes, and a
# damaged one is dropped from its batch when it fails to decode instead of being counted here.
FULL_CHECK_LIMIT = 100_000
SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM",
              b"II*\x00", b"MM\x00*", b"\x00\x00\x01\x00")  # PNG JPEG GIF BMP TIFF ICO


@dataclass
class FolderIndex:
    """The image files of one split and what was left out while finding them."""

    paths: list[str] = field(default_factory=list)
    labels: list[int] | None = None
    candidates: int = 0
    bad: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)  # folders os.walk could not read
    loose: int = 0  # images beside class folders, which belong to no class
    others: Counter = field(default_factory=Counter)  # files that are no image, by extension


def extension(name: str) -> str:
    return os.path.splitext(name)[1].lower()


def is_image_name(name: str) -> bool:
    """An image extension (any case), or none at all: such a file is recognised by content."""
    if name.startswith("."):
        return False
    ext = extension(name)
    return not ext or ext in IMAGE_EXTENSIONS


def image_files(top: str, unlisted: list[str], others: Counter | None = None) -> list[str]:
    """Candidate image files below ``top`` (see `is_image_name`), sorted; hidden files and
    folders left out, the other files counted by extension into ``others``.

    Symlinked folders are not followed, so a link loop cannot hang the walk.
    """
    found = []
    for root, dirs, files in os.walk(top, followlinks=False,
                                     onerror=lambda e: unlisted.append(e.filename)):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            if is_image_name(f):
                found.append(os.path.join(root, f))
            elif others is not None and not f.startswith("."):
                others[extension(f)] += 1
    return sorted(found)


# Full checks this process has made, by (path, size, mtime_ns): one pretrain command indexes
# its folder for training, evaluation and the report, and a check costs ~150 us a file here
# (~20 s for CIFAR-10's 60,000 JPEGs through the thread pool; 4 us remembered); a file changed
# since has another key, so it is checked again. Bounded: past `CHECKED_MEMO` entries it starts
# afresh.
_CHECKED: dict[tuple[str, int, int], bool | None] = {}
CHECKED_MEMO = 2 * FULL_CHECK_LIMIT
# Pillow's format for each extension: opening with that format first skips the other plugins'
# probes (~110 us instead of ~190 us for a small JPEG here, at indexing and at every decode); a
# file whose bytes are another format than its name says is still opened by the full probe.
FORMAT_OF = {ext: fmt for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def check_image(path: str) -> bool | None:
    """Whether ``path`` opens as an image of sane size, without decoding its pixels; None for
    a file with no extension that is no image at all (not a damaged one, so not counted).

    ``verify`` reads the whole file for PNG (chunk CRCs, so truncation shows) but only the
    header for most other formats. A JPEG without its end marker is decoded (at reduced scale)
    to tell a truncated file from one with trailing bytes; what still slips through fails at
    decode and is dropped there, uncounted. Remembered in `_CHECKED`.
    """
    try:
        st = os.stat(path)
    except OSError:
        return False
    key = (path, st.st_size, st.st_mtime_ns)
    if key in _CHECKED:
        return _CHECKED[key]
    good = _check_image(path, st.st_size)
    if len(_CHECKED) >= CHECKED_MEMO:
        _CHECKED.clear()
    _CHECKED[key] = good
    return good


def _open_image(path: str | BinaryIO) -> Image.Image:
    """``Image.open``, trying the format the file's extension names first (a file object, a
    shard's member, has no name to go by)."""
    fmt = FORMAT_OF.get(extension(os.path.basename(path))) if isinstance(path, str) else None
    if fmt is not None:
        try:
            return Image.open(path, formats=[fmt])
        except UnidentifiedImageError:
            pass  # named for one format, holding another (or none): probe them all
    return Image.open(path)


def _check_image(path: str, size: int) -> bool | None:
    unnamed = not extension(os.path.basename(path))
    try:
        if size == 0:
            return None if unnamed else False
        try:
            im = _open_image(path)
        except UnidentifiedImageError:
            return None if unnamed else False
        with im:
            if im.width * im.height > MAX_PIXELS:
                return False
            jpeg = im.format == "JPEG"
            im.verify()
        return not jpeg or jpeg_is_whole(path)
    # OSError (unreadable, not an image, truncated), DecompressionBombError/Warning, and
    # whatever else a Pillow plugin raises on a malformed file: all mean "skip it".
    except Exception:  # noqa: BLE001
        return False


def sniff_image(path: str) -> bool | None:
    """`check_image` for large folders: a file that starts with a known image signature (PNG,
    JPEG, GIF, BMP, TIFF, ICO, WebP, PBM/PGM/PPM) passes unopened; any other goes through
    `check_image`."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    netpbm = len(head) > 2 and head[:1] == b"P" and head[1:2] in b"1234567" and head[2:3].isspace()
    if head.startswith(SIGNATURES) or netpbm or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return True
    return check_image(path)


def jpeg_is_whole(path: str) -> bool:
    """True when the JPEG ends in its EOI marker or, lacking it, still decodes in full."""
    with open(path, "rb") as f:
        f.seek(-2, os.SEEK_END)
        if f.read(2) == b"\xff\xd9":
            return True
    with Image.open(path) as im:
        im.draft("L", (1, 1))  # DCT scaling: cheap, yet it reads all the entropy-coded data
        im.load()  # raises OSError on a truncated file
    return True


def keep_readable(paths: list[str], index: FolderIndex) -> list[str]:
    """The paths that pass ``check_image`` (``sniff_image`` past `FULL_CHECK_LIMIT` files);
    the others are counted into ``index``."""
    ok: list[bool | None] = []
    # Pillow warns (rather than raises) between its two bomb limits; make that a skip.
    # Set once here, not per file, because warning filters are process-wide state.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        check = check_image if len(paths) <= FULL_CHECK_LIMIT else sniff_image
        batches = [paths[i:i + CHECK_BATCH] for i in range(0, len(paths), CHECK_BATCH)]
        with ThreadPoolExecutor(CHECK_THREADS) as pool:
            for part in pool.map(lambda batch: [check(p) for p in batch], batches):
                ok.extend(part)
    if None in ok:
        index.others[NO_EXTENSION] += ok.count(None)
    index.candidates += len(paths) - ok.count(None)
    index.bad.extend(p for p, good in zip(paths, ok, strict=True) if good is False)
    return [p for p, good in zip(paths, ok, strict=True) if good]


def entry_is(entry: os.DirEntry, kind: str) -> bool:
    """``entry.is_dir()``/``is_file()``, False for a link loop or a dangling link (which raise)."""
    try:
        return entry.is_dir() if kind == "dir" else entry.is_file()
    except OSError:
        return False


def class_folders(root: Path) -> list[str]:
    """Sorted names of the visible sub-folders of ``root``, the classes of a labelled split.

    A linked folder counts unless it leads back to ``root`` or above: walking that would
    index every other class a second time.
    """
    real_root = os.path.realpath(root)
    names = []
    for entry in os.scandir(root):
        if entry.name.startswith(".") or not entry_is(entry, "dir"):
            continue
        target = os.path.realpath(entry.path)
        if entry.is_symlink() and os.path.commonpath([target, real_root]) == target:
            continue
        names.append(entry.name)
    return sorted(names)


def index_split(root: Path, classes: list[str] | None) -> FolderIndex:
    """Index one split root: one sub-folder per class, or loose images when unlabeled."""
    index = FolderIndex()
    if classes is None:
        index.paths = keep_readable(image_files(str(root), index.unlisted, index.others), index)
        return index
    count_loose_files(root, index)
    to_label = {name: i for i, name in enumerate(classes)}
    label_of: dict[str, int] = {}
    for name in class_folders(root):
        if name not in to_label:
            raise DataError(f"{root / name} is a class the training split does not have "
                            f"(its classes: {', '.join(classes)}); rename or remove it")
        label_of.update(dict.fromkeys(image_files(str(root / name), index.unlisted,
                                                  index.others), to_label[name]))
    if not label_of and index.loose:
        raise DataError(f"{root} holds images but no class folders, while the training split "
                        f"has them; sort its images into folders named {', '.join(classes[:3])}"
                        f"{', ...' if len(classes) > 3 else ''}")
    index.paths = keep_readable(list(label_of), index)
    index.labels = [label_of[p] for p in index.paths]
    return index


def count_loose_files(root: Path, index: FolderIndex) -> None:
    """Count the files beside the class folders: images (which belong to no class) and others
    (by extension, for the message when no class holds an image)."""
    for entry in os.scandir(root):
        if entry.name.startswith(".") or not entry_is(entry, "file"):
            continue
        ext = extension(entry.name)
        if ext in IMAGE_EXTENSIONS:
            index.loose += 1
        else:
            index.others[ext or NO_EXTENSION] += 1


def split_roots(root: Path) -> tuple[Path, Path | None]:
    """``train/`` with ``test/`` (or ``val/``) is a split source; anything else is one split."""
    train = root / "train"
    if not train.is_dir():
        return root, None
    for name in TEST_FOLDERS:
        if (root / name).is_dir():
            return train, root / name
    # train/ alone is the train half of that layout, not a one-class dataset.
    alone = [e.name for e in os.scandir(root) if not e.name.startswith(".")] == ["train"]
    return (train, None) if alone else (root, None)


def report_skips(root: Path, indexes: list[FolderIndex]) -> int:
    """Warn once about everything left out; return how many files were skipped."""
    bad = [p for ix in indexes for p in ix.bad]
    candidates = sum(ix.candidates for ix in indexes)
    unlisted = [p for ix in indexes for p in ix.unlisted]
    loose = sum(ix.loose for ix in indexes)
    notes = []
    if bad:
        examples = ", ".join(os.path.relpath(p, root) for p in bad[:3])
        notes.append(f"skipped {len(bad)} of {candidates} files in {root}: unreadable or not "
                     f"images (e.g. {examples})")
    if unlisted:
        notes.append(f"could not list {len(unlisted)} folder(s) (e.g. {unlisted[0]})")
    if loose:
        notes.append(f"ignored {loose} image(s) lying beside the class folders of {root}; "
                     "move them into a class folder")
    if notes:
        warnings.warn("; ".join(notes), UserWarning, stacklevel=4)
    return len(bad)


def native_size(paths: list[str]) -> int | None:
    """The median shorter side of up to `SIZE_SAMPLE` images spread evenly over ``paths``,
    rounded and clamped as `MAX_FOLDER_SIZE` says; None when no sampled header reads."""
    picks = np.linspace(0, len(paths) - 1, min(len(paths), SIZE_SAMPLE)).round().astype(int)
    sides = []
    for i in np.unique(picks):
        try:
            with Image.open(os.fsdecode(paths[i])) as im:  # reads the header, not the pixels
                sides.append(min(im.size))
        except (OSError, UnidentifiedImageError, ValueError):
            continue
    if not sides:
        return None
    side = int(min(max(np.median(sides), MIN_FOLDER_SIZE), MAX_FOLDER_SIZE))
    return side - side % (8 if side > 32 else 4)


def load_folder(root: Path, channels: int, image_size: int | None = None) -> DataSource:
    """Index an image folder (ImageNet layout or a single split) without decoding it; images
    are decoded at ``image_size``, by default the folder's own (`native_size`)."""
    train_root, test_root = split_roots(root)
    classes = class_folders(train_root) or None
    indexes = [index_split(train_root, classes)]
    if test_root is not None:
        indexes.append(index_split(test_root, classes))
    for split_root, ix in zip((train_root, test_root), indexes, strict=False):
        if not ix.paths:
            raise DataError(f"no readable images in {split_root} {why_no_images(ix)}")
    skipped = report_skips(root, indexes)
    image_size = image_size or native_size(indexes[0].paths) or MAX_FOLDER_SIZE
    splits = [folder_split(ix, channels, image_size) for ix in indexes]
    return DataSource(str(root), splits[0], splits[1] if len(splits) > 1 else None,
                      channels=channels, image_size=image_size, classes=classes,
                      skipped=skipped)


def why_no_images(index: FolderIndex) -> str:
    """Why a split found nothing: its damaged images, else the other files it saw."""
    if index.candidates:
        return f"({len(index.bad)} files skipped)"
    fix = "put images in it (any format Pillow reads), or in one sub-folder per class"
    if not index.others:
        return f"(no .png/.jpg/... files found): {fix}"
    seen = ", ".join(f"{n} {ext}" for ext, n in index.others.most_common(5))
    more = ", ..." if len(index.others) > 5 else ""
    if ".tar" in index.others:
        fix = ("tar shards are read as a pattern of files, e.g. --data "
               "'DIR/train-{000000..000009}.tar'")
    return f"(saw {seen}{more}; none is an image): {fix}"


def folder_split(index: FolderIndex, channels: int, image_size: int) -> Split:
    labels = np.asarray(index.labels, dtype=np.int64) if index.labels is not None else None
    dataset = FolderImages(index.paths, labels, channels, image_size)
    return Split(dataset, labels, paths=index.paths)


class FolderImages(Dataset):
    """Image files decoded on demand to uint8 (C, image_size, image_size).

    Returns ``None`` for a file that fails to decode; ``collate_images`` drops it.
    """

    def __init__(self, paths: list[str], labels: np.ndarray | None, channels: int,
                 image_size: int):
        # One numpy byte array, not a list of str: forked DataLoader workers touching
        # millions of Python objects would copy the whole list page by page (refcounts).
        self.paths = np.array([os.fsencode(p) for p in paths], dtype=np.bytes_)
        self.labels = labels
        self.channels = channels
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | None:
        label = int(self.labels[i]) if self.labels is not None else -1
        try:
            image = decode_image(os.fsdecode(self.paths[i]), self.channels, self.image_size)
        except Exception:  # noqa: BLE001 - any failure in any Pillow plugin means "bad file"
            return None
        return image, label


def decode_image(path: str | BinaryIO, channels: int, image_size: int) -> torch.Tensor:
    """Decode, convert to ``channels``, resize the shorter side to ``image_size`` and
    center-crop: uint8 (C, image_size, image_size)."""
    mode = "L" if channels == 1 else "RGB"
    with _open_image(path) as im:
        if im.width * im.height > MAX_PIXELS:
            raise ValueError(f"{path} has more than {MAX_PIXELS} pixels")
        # JPEG can decode straight to a smaller scale (DCT scaling): far less work for large
        # photos, and the size it picks is never below the one asked for.
        im.draft(mode, (image_size, image_size))
        im = to_mode(im, mode)
        w, h = im.size
        side = min(w, h)
        # Resizing the centered square box is resize-shorter-side-then-center-crop in one
        # pass. Pillow's bilinear filter widens its support when shrinking: antialiased.
        box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
        im = im.resize((image_size, image_size), Image.BILINEAR, box=box)
    pixels = torch.from_numpy(np.array(im, dtype=np.uint8))
    return pixels[None] if channels == 1 else pixels.permute(2, 0, 1).contiguous()


def to_mode(im: Image.Image, mode: str) -> Image.Image:
    """``im`` as 8-bit "L" or "RGB": 16-bit rescaled, transparency composited onto white."""
    if im.mode in SIXTEEN_BIT_MODES:
        # Pillow's own conversion clips 16-bit values at 255; rescale the range instead.
        values = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.rint(np.clip(values, 0, 65535) / 257.0).astype(np.uint8))
    elif im.mode == "F":
        values = np.asarray(im, dtype=np.float64)
        scale = 255.0 if values.size and np.nanmax(values) <= 1.0 else 1.0
        im = Image.fromarray(np.rint(np.clip(np.nan_to_num(values) * scale, 0, 255))
                             .astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im.convert("RGBA"))
    return im if im.mode == mode else im.convert(mode)
