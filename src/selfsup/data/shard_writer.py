"""``selfsup shard``: an image folder written as WebDataset tar shards plus ``index.json``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .folder import IMAGE_EXTENSIONS, extension, load_folder
from .shards import INDEX_FORMAT, INDEX_NAME, needs_webdataset
from .split import DataError, Split

DEFAULT_SHARD_SIZE = 1000


@dataclass
class ShardsWritten:
    out: Path
    samples: dict[str, int] = field(default_factory=dict)  # per split
    shards: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # bad files of the folder, left out

    def pattern(self, split: str = "train") -> str:
        """The brace pattern naming the split's shards, for ``--data``."""
        last = self.shards[split] - 1
        return str(self.out / f"{split}-{{{0:06d}..{last:06d}}}.tar")


def member_suffix(path: str) -> str:
    """The tar member's extension: the file's own when Pillow knows it, else its format's."""
    ext = extension(path)
    if ext in IMAGE_EXTENSIONS:
        return ext[1:]
    with Image.open(path) as im:  # a file without an extension, recognised by content
        return (im.format or "png").lower()


def write_shards(folder: str | Path, out: str | Path, shard_size: int = DEFAULT_SHARD_SIZE,
                 seed: int = 0) -> ShardsWritten:
    """Write the readable images of ``folder`` (labels from class sub-folders, train/ and test/
    splits as a folder source reads them) into ``out/{split}-NNNNNN.tar``, ``shard_size``
    samples each, in an order shuffled by ``seed`` so every shard mixes the classes (a stream
    reads whole shards). Images keep their encoded bytes; ``out/index.json`` records counts,
    labels and class names, so loading the shards needs no scan."""
    wds = needs_webdataset()
    if shard_size < 1:
        raise DataError(f"--shard-size must be at least 1, got {shard_size}")
    out = Path(out)
    if out.is_dir() and any(p.suffix == ".tar" or p.name == INDEX_NAME for p in out.iterdir()):
        raise DataError(f"{out} already holds shards; give another --out or empty it first")
    source = load_folder(Path(folder), 3, 1)  # the index only: nothing is decoded
    out.mkdir(parents=True, exist_ok=True)
    done = ShardsWritten(out, skipped=source.skipped)
    entries = []
    for split_name, split in (("train", source.train), ("test", source.test)):
        if split is None:
            continue
        entries += write_split(wds, split, split_name, out, shard_size, seed)
        done.samples[split_name] = len(split)
        done.shards[split_name] = sum(e["split"] == split_name for e in entries)
    index = {"format": INDEX_FORMAT, "version": 1, "source": str(folder),
             "classes": source.classes, "shards": entries}
    tmp = out / f".{INDEX_NAME}.tmp"
    tmp.write_text(json.dumps(index))
    os.replace(tmp, out / INDEX_NAME)
    return done


def write_split(wds, split: Split, name: str, out: Path, shard_size: int, seed: int
                ) -> list[dict]:
    """The shards of one split; their ``index.json`` entries."""
    order = np.random.default_rng(seed).permutation(len(split.paths))
    entries = []
    for n, start in enumerate(range(0, len(order), shard_size)):
        path = out / f"{name}-{n:06d}.tar"
        tmp = out / f".{path.name}.tmp"
        labels = []
        with wds.TarWriter(str(tmp), encoder=False, mtime=0) as sink:
            for pos, i in enumerate(order[start:start + shard_size]):
                file = split.paths[i]
                sample = {"__key__": f"{start + pos:08d}",
                          member_suffix(file): Path(file).read_bytes()}
                if split.labels is not None:
                    labels.append(int(split.labels[i]))
                    sample["cls"] = str(labels[-1]).encode()
                sink.write(sample)
        os.replace(tmp, path)
        entries.append({"name": path.name, "split": name, "samples": len(order[start:start +
                        shard_size]), "bytes": path.stat().st_size,
                        "labels": labels if split.labels is not None else None})
    return entries
