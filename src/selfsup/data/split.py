"""What every source hands out: splits of uint8 images with optional labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset, Subset

if TYPE_CHECKING:
    from .table import TableSchema


class DataError(Exception):
    """A source is missing, empty or unreadable. Message: one clear line naming the path and
    what to do."""


class InMemoryImages(Dataset):
    """A uint8 image tensor (N, C, H, W) with int64 labels (N,), -1 where unlabeled.

    ``__getitems__`` hands a whole batch back as two tensors, so a DataLoader with
    ``collate_fn=collate_batched`` indexes once per batch instead of once per image.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        self.images = images
        self.labels = (labels if labels is not None
                       else torch.full((len(images),), -1, dtype=torch.long))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.images[idx], self.labels[idx]


def collate_batched(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The identity: ``InMemoryImages.__getitems__`` already returns a collated batch.

    A module-level function rather than a lambda so DataLoader workers can pickle it.
    """
    return batch


def collate_images(items) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (image, label) pairs into uint8 (B, C, H, W) and int64 (B,), dropping ``None``.

    ``None`` is what a folder dataset returns for a file that failed to decode; dropping it
    keeps one bad file from ending a run. When every item failed the batch is empty:
    shapes (0, 0, 0, 0) and (0,).
    """
    items = [it for it in items if it is not None]
    if not items:
        return torch.empty((0, 0, 0, 0), dtype=torch.uint8), torch.empty(0, dtype=torch.long)
    images = torch.stack([image for image, _ in items])
    labels = torch.tensor([label for _, label in items], dtype=torch.long)
    return images, labels


@dataclass
class Split:
    """One split of a source.

    ``dataset[i]`` is (uint8 (C, H, W), int label, -1 when unlabeled); a folder dataset gives
    ``None`` for a file that fails to decode. ``images`` is set when the whole split is held
    in memory, ``paths`` when it is an indexed image folder.
    """

    dataset: Dataset
    labels: np.ndarray | None  # (N,) int64
    # the split held in memory: uint8 images (N, C, H, W), or a table's raw rows float32 (N, F)
    # (data/table.py), which in-memory batching, subsets and probes treat alike
    images: torch.Tensor | None = None
    paths: list[str] | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def collate_fn(self) -> Callable:
        """The DataLoader ``collate_fn`` that fits this split's dataset."""
        return collate_batched if self.images is not None else collate_images


def in_memory_split(images: torch.Tensor, labels: np.ndarray | None) -> Split:
    """A split over a uint8 tensor (N, C, H, W) and optional labels (N,)."""
    tensor_labels = torch.from_numpy(labels) if labels is not None else None
    return Split(InMemoryImages(images, tensor_labels), labels, images=images)


@dataclass
class DataSource:
    """A loaded source: its splits and what they hold."""

    name: str  # "fashion-mnist", "digits", or the path given
    train: Split
    test: Split | None  # None when the source has no split of its own
    channels: int  # 1 or 3 (0 for a table)
    image_size: int  # side of the square images the splits yield (0 for a table)
    classes: list[str] | None
    skipped: int = 0  # bad files skipped while indexing
    table: TableSchema | None = None  # a table's columns; None for images


def stratified_holdout(split: Split, fraction: float = 0.2, seed: int = 0) -> tuple[Split, Split]:
    """Hold out ``fraction`` of each class as a test split; the same seed gives the same split.

    Both parts keep the original order of the images.
    """
    if split.labels is None:
        raise DataError("cannot hold out a labelled test set: source has no labels")
    if not 0.0 < fraction < 1.0:
        raise DataError(f"holdout fraction must be between 0 and 1, got {fraction}")
    try:
        keep, held = train_test_split(np.arange(len(split.labels)), test_size=fraction,
                                      random_state=seed, stratify=split.labels)
    except ValueError as e:
        # sklearn refuses when a class has a single image or the holdout is smaller than
        # the number of classes; say so in the source's terms.
        raise DataError(f"cannot hold out {fraction:.0%} per class from {len(split.labels)} "
                        f"labelled images: {e}") from e
    return _subset(split, np.sort(keep)), _subset(split, np.sort(held))


def random_holdout(split: Split, fraction: float = 0.2, seed: int = 0) -> tuple[Split, Split]:
    """Hold out ``fraction`` of the samples uniformly: `stratified_holdout` for a regression
    target, which has no classes to stratify on. Both parts keep the original order."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"holdout fraction must be between 0 and 1, got {fraction}")
    n = len(split)
    held = round(fraction * n)
    if not 0 < held < n:
        raise DataError(f"cannot hold out {fraction:.0%} of {n} samples: too few")
    order = np.random.default_rng(seed).permutation(n)
    return _subset(split, np.sort(order[held:])), _subset(split, np.sort(order[:held]))


def sample_split(split: Split, n: int, seed: int = 0) -> Split:
    """A fixed random subset of at most ``n`` images of a split, in the split's order."""
    if n >= len(split):
        return split
    picked = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n]
    return _subset(split, np.sort(picked.numpy()))


def stratified_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted positions of a seeded sample of ``n`` < len(labels) items in which each class
    keeps its share of ``n`` to within one item (largest remainders get the leftovers)."""
    # not sklearn's train_test_split(stratify=) as the probes use: it refuses a class with one
    # image and a sample smaller than the number of classes, which a bound on a large folder of
    # many classes must allow (a rare class then gets no image, not an error)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    share = counts * n / len(labels)
    quota = np.floor(share).astype(np.int64)
    # ties of remainder go to the larger class
    extra = np.lexsort((-counts, -(share - quota)))[: n - quota.sum()]
    quota[extra] += 1
    rng = np.random.default_rng(seed)
    # each class's positions in order, by one sort (ImageNet: 1,000 classes of 1.28M labels)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    picked = [rng.permutation(m)[:q] for m, q in zip(members, quota, strict=True)]
    return np.sort(np.concatenate(picked))


def stratified_sample(split: Split, n: int, seed: int = 0) -> Split:
    """A fixed, class-stratified subset of at most ``n`` items of a split, in the split's order
    (`stratified_indices`): a probe fitted on it sees the split's class balance, rare classes
    included. Without class labels (none, or a regression target's values) it is
    `sample_split`'s uniform sample."""
    if n >= len(split):
        return split
    labels = split.labels
    if labels is None or not np.issubdtype(labels.dtype, np.integer):
        return sample_split(split, n, seed)
    return _subset(split, stratified_indices(labels, n, seed))


def _subset(split: Split, indices: np.ndarray) -> Split:
    labels = split.labels[indices] if split.labels is not None else None
    if split.images is not None:
        return in_memory_split(split.images[torch.from_numpy(indices)], labels)
    if hasattr(split.dataset, "subset"):  # a stream (tar shards) picks its own, still streamed
        return Split(split.dataset.subset(indices), labels)
    paths = [split.paths[i] for i in indices] if split.paths is not None else None
    return Split(Subset(split.dataset, indices.tolist()), labels, paths=paths)
