"""WebDataset tar shards: a source streamed from ``.tar`` files, for data past one folder.

A shard holds samples as tar members that share a key: ``000123.png`` (any format Pillow reads)
and, when labelled, ``000123.cls`` (the class number as text), the layout the ``webdataset``
library reads and writes. Each sample keeps a fixed index, its shard's offset (shards in the
order given) plus its position in the shard, so the Batch contract holds for streamed data.

``selfsup shard`` writes ``index.json`` beside its shards (counts, labels, class names); shards
without one are scanned when loaded (every image checked as a folder's are), and bad members
are skipped and counted the same way. ``webdataset`` is imported only here, when shards are read.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from .folder import CHECK_THREADS, IMAGE_EXTENSIONS, MAX_PIXELS, decode_image
from .split import DataError, DataSource, Split

INDEX_NAME = "index.json"
INDEX_FORMAT = "selfsup-shards"
SPLITS = ("train", "test")


def needs_webdataset():
    """The ``webdataset`` module, or one line on how to install it."""
    try:
        import webdataset
    except ImportError:
        raise DataError("tar shards need the webdataset package: pip install "
                        "'selfsup[shards]' (or pip install webdataset)") from None
    return webdataset


@dataclass
class Shard:
    """One tar file: how many samples it holds, their labels, which were found unreadable."""

    path: str
    samples: int
    labels: np.ndarray | None = None  # (samples,) int64, -1 where a sample has no label
    bad: frozenset[int] = field(default_factory=frozenset)  # positions that failed the check
    offset: int = 0  # index of its first sample in the source


def read_shard(path: str, errors: list[str] | None = None) -> Iterator[dict]:
    """The samples of a tar shard in order, as webdataset groups them: {"__key__", "png", ...}.

    A damaged tar ends the stream where the damage starts; what went wrong goes to ``errors``.
    """
    needs_webdataset()
    from webdataset.tariterators import group_by_keys, tar_file_expander

    def keep_going(e: Exception) -> bool:
        if errors is not None:
            errors.append(str(e.args[0]) if e.args else type(e).__name__)
        return True

    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the generator is done
    except OSError as e:
        keep_going(e)
        return
    with f:
        files = tar_file_expander([{"url": path, "stream": f}], handler=keep_going)
        yield from group_by_keys(files, handler=keep_going)


def image_member(sample: dict) -> bytes | None:
    """The bytes of the sample's image member (the first with an image extension)."""
    for key, value in sample.items():
        if not key.startswith("__") and "." + key.rsplit(".", 1)[-1] in IMAGE_EXTENSIONS:
            return value
    return None


def sample_label(sample: dict) -> int:
    """The ``cls`` member as an int; -1 when there is none; ValueError when it is no number."""
    value = sample.get("cls")
    return -1 if value is None else int(value.decode().strip())


def check_image_bytes(data: bytes) -> bool:
    """Whether ``data`` opens as an image of sane size (the folder's check, on bytes)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > MAX_PIXELS:
                    return False
                jpeg = im.format == "JPEG"
                im.verify()
            if jpeg and not data.endswith(b"\xff\xd9"):
                with Image.open(io.BytesIO(data)) as im:
                    im.draft("L", (1, 1))
                    im.load()  # raises OSError on a truncated JPEG
        return True
    except Exception:  # noqa: BLE001 - any failure in any Pillow plugin means "bad member"
        return False


def scan_shard(path: str) -> tuple[Shard, list[str]]:
    """Count a shard's samples, read their labels and check each image; also name the damage
    (a truncated tar, a member that is no image) as ``file.tar:key`` examples."""
    labels, bad, errors, keys = [], set(), [], []
    for pos, sample in enumerate(read_shard(path, errors)):
        image = image_member(sample)
        try:
            labels.append(sample_label(sample))
        except ValueError:
            labels.append(-1)
            bad.add(pos)
        if image is None or not check_image_bytes(image):
            bad.add(pos)
        if pos in bad and len(keys) < 3:
            keys.append(sample["__key__"])
    name = os.path.basename(path)
    examples = [f"{name}:{k}" for k in keys]
    if errors:
        examples.append(f"{name} damaged after {len(labels)} samples ({errors[0]})")
    labels_arr = np.asarray(labels, dtype=np.int64)
    has_labels = bool(len(labels_arr) and (labels_arr >= 0).any())
    return Shard(path, len(labels), labels_arr if has_labels else None, frozenset(bad)), examples


def read_index(folder: Path) -> dict:
    """``index.json`` of a folder of shards written by ``selfsup shard``, or {} without one."""
    path = folder / INDEX_NAME
    if not path.is_file():
        return {}
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable shard index ({e}); delete it to scan the "
                        "shards instead") from None
    if index.get("format") != INDEX_FORMAT:
        return {}
    return index


def indexed_shard(path: str, entry: dict | None) -> Shard | None:
    """The shard as ``index.json`` records it, when the file is still the one it describes."""
    if entry is None or os.path.getsize(path) != entry.get("bytes"):
        return None
    labels = entry.get("labels")
    return Shard(path, int(entry["samples"]),
                 np.asarray(labels, dtype=np.int64) if labels is not None else None)


def expand_spec(spec: str) -> list[str]:
    """``'dir/train-{0000..0099}.tar'`` (brace ranges and lists, as webdataset expands them)
    into the existing files it names; a missing one is an error naming it."""
    needs_webdataset()
    from webdataset.shardlists import expand_urls

    paths = [os.path.expanduser(p) for p in expand_urls(spec)]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DataError(f"shard {missing[0]} not found ({len(missing)} of the {len(paths)} "
                        f"named by {spec} are missing)")
    return paths


def load_shards(spec: str, channels: int, image_size: int) -> DataSource:
    """A shard source: ``spec`` is a brace pattern of ``.tar`` files (one split) or a folder with
    the ``index.json`` of ``selfsup shard`` (its train and, when written, test shards)."""
    needs_webdataset()  # before any work: streaming will need it
    folder = Path(spec).expanduser()
    if folder.is_dir():
        index = read_index(folder)
        names = {s: [e["name"] for e in index.get("shards", []) if e.get("split") == s]
                 for s in SPLITS}
        if not names["train"]:
            raise DataError(f"{spec} holds no {INDEX_NAME} of train shards: give a pattern such "
                            f"as '{folder}/train-{{000000..000009}}.tar' or write them with "
                            "selfsup shard")
        paths = {s: [str(folder / n) for n in names[s]] for s in SPLITS}
        missing = [p for ps in paths.values() for p in ps if not os.path.isfile(p)]
        if missing:
            raise DataError(f"shard {missing[0]} not found ({len(missing)} of those "
                            f"{folder / INDEX_NAME} lists are missing)")
    else:
        paths = {"train": expand_spec(spec), "test": []}
    entries, classes = {}, None
    for parent in {os.path.dirname(p) for ps in paths.values() for p in ps}:
        index = read_index(Path(parent))
        classes = index.get("classes") or classes
        entries |= {os.path.join(parent, e["name"]): e for e in index.get("shards", [])}
    train, bad, examples = shard_split(paths["train"], entries, channels, image_size)
    test = None
    if paths["test"]:
        test, bad_test, more = shard_split(paths["test"], entries, channels, image_size)
        bad, examples = bad + bad_test, examples + more
    if bad or examples:
        total = len(train) + (len(test) if test is not None else 0)
        warnings.warn(f"skipped {bad} of {total} samples in {spec}: unreadable or not images "
                      f"(e.g. {', '.join(examples[:3])})", UserWarning, stacklevel=3)
    return DataSource(spec, train, test, channels=channels, image_size=image_size,
                      classes=classes if train.labels is not None else None, skipped=bad)


def shard_split(paths: list[str], entries: dict[str, dict], channels: int, image_size: int
                ) -> tuple[Split, int, list[str]]:
    """One split over ``paths``: indexed shards as recorded, the others scanned (in threads:
    reading and checking is I/O and zlib, which release the GIL)."""
    shards: list[Shard | None] = [indexed_shard(p, entries.get(p)) for p in paths]
    todo = [i for i, s in enumerate(shards) if s is None]
    examples: list[str] = []
    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        for i, (shard, found) in zip(todo, pool.map(scan_shard, [paths[i] for i in todo]),
                                     strict=True):
            shards[i] = shard
            examples += found
    offset = 0
    for shard in shards:
        shard.offset, offset = offset, offset + shard.samples
    bad = sum(len(s.bad) for s in shards)
    if offset - bad <= 0:
        raise DataError(f"no readable images in the {len(paths)} shard(s) from "
                        f"{os.path.dirname(paths[0]) or '.'} (e.g. {os.path.basename(paths[0])}"
                        f"{': ' + examples[0] if examples else ' is empty'})")
    labels = None
    if any(s.labels is not None for s in shards):
        labels = np.concatenate([s.labels if s.labels is not None
                                 else np.full(s.samples, -1, dtype=np.int64) for s in shards])
    return Split(ShardSamples(shards, channels, image_size), labels), bad, examples


def decode_sample(sample: dict | None, channels: int, image_size: int
                  ) -> tuple[torch.Tensor, int] | None:
    """(uint8 (C, S, S), label) of a sample; None when it has no image or fails to decode."""
    image = image_member(sample) if sample is not None else None
    if image is None:
        return None
    try:
        return decode_image(io.BytesIO(image), channels, image_size), sample_label(sample)
    except Exception:  # noqa: BLE001 - any failure in any Pillow plugin means "bad member"
        return None


class ShardSamples(IterableDataset):
    """A shard source's samples in index order, decoded lazily: (uint8 (C, S, S), label) items,
    ``None`` for a bad member (``collate_images`` drops it).

    With ``keep`` (sorted indices: a held-out part, a probe sample) only those are decoded; the
    rest of their shards is read past and shards without any are not opened. DataLoader workers
    take every ``num_workers``-th shard.
    """

    def __init__(self, shards: list[Shard], channels: int, image_size: int,
                 keep: np.ndarray | None = None):
        self.shards = shards
        self.channels = channels
        self.image_size = image_size
        self.keep = keep
        self.total = sum(s.samples for s in shards)

    def __len__(self) -> int:
        return self.total if self.keep is None else len(self.keep)

    def subset(self, positions: np.ndarray) -> ShardSamples:
        """The samples at ``positions`` (0..len-1, sorted) of this one, still streamed."""
        base = self.keep if self.keep is not None else np.arange(self.total)
        return ShardSamples(self.shards, self.channels, self.image_size,
                            base[np.asarray(positions, dtype=np.int64)])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | None:
        """One sample, read from its shard up to it: correct anywhere a Dataset is indexed,
        but slow; reading many, ``subset`` them and iterate once."""
        return next(iter(self.subset(np.array([i]))))

    def kept(self, shard: Shard) -> np.ndarray:
        """Local positions of ``shard`` this dataset holds, in order."""
        if self.keep is None:
            return np.arange(shard.samples)
        lo, hi = np.searchsorted(self.keep, [shard.offset, shard.offset + shard.samples])
        return self.keep[lo:hi] - shard.offset

    def position(self, index: int) -> int:
        """The dataset position (0..len-1) of source index ``index``."""
        return index if self.keep is None else int(np.searchsorted(self.keep, index))

    def raw(self, shard: Shard, skip: int = 0) -> Iterator[tuple[int, dict | None]]:
        """(index, undecoded sample) of the kept samples of ``shard`` after the first ``skip``;
        None for a member the scan found bad, {} for one a damaged tar no longer holds."""
        wanted = self.kept(shard)[skip:]
        if not len(wanted):
            return
        want = set(wanted.tolist())
        last = int(wanted[-1])
        seen = -1
        for pos, sample in enumerate(read_shard(shard.path)):
            seen = pos
            if pos in want:
                yield shard.offset + pos, None if pos in shard.bad else sample
            if pos >= last:
                return
        for pos in wanted[wanted > seen]:  # the tar ended early: damaged since it was indexed
            yield shard.offset + int(pos), {}  # no image: decoded as bad, and counted

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int] | None]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for shard in self.shards[worker::workers]:
            for _, sample in self.raw(shard):
                yield decode_sample(sample, self.channels, self.image_size)


def is_shard_spec(spec: str) -> bool:
    """A ``.tar`` file or brace pattern of them, or a folder holding ``selfsup shard``'s index."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return (path / INDEX_NAME).is_file()
    return spec.lower().endswith(".tar")
