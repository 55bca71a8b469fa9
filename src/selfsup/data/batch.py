"""The batch every method receives: inputs, labels when the source has them, and indices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch.utils.data import Dataset

from .split import collate_images


class Batch(NamedTuple):
    """``inputs``: uint8 images (B, C, H, W) (table rows later); ``labels``: int64 (B,), or None
    when the source has none (labels never train a self-supervised method); ``indices``: int64
    (B,), each sample's position in the training set, for per-sample method state.

    A NamedTuple, so Lightning moves it to the device like any tuple of tensors.
    """

    inputs: torch.Tensor
    labels: torch.Tensor | None
    indices: torch.Tensor


def as_batch(inputs: torch.Tensor, labels: torch.Tensor | None = None,
             indices: torch.Tensor | None = None) -> Batch:
    """A `Batch` of ``inputs``; indices 0..B-1 when not given (tests, benchmarks)."""
    if indices is None:
        indices = torch.arange(inputs.shape[0], device=inputs.device)
    if labels is not None and bool((labels < 0).all()):
        labels = None  # -1 marks unlabeled samples: a batch of only those has no labels
    return Batch(inputs, labels, indices)


class WithIndices(Dataset):
    """Wraps a split's dataset so each item (or pre-collated batch) carries its dataset index.

    An in-memory dataset still fetches a whole batch in one ``__getitems__``; a folder
    dataset's items become (image, label, index), ``None`` where a file failed to decode.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        item = self.dataset[i]
        return None if item is None else (*item, i)

    def __getitems__(self, indices: Sequence[int]):
        fetch = getattr(self.dataset, "__getitems__", None)
        batch = fetch(indices) if fetch else [self.dataset[i] for i in indices]
        if isinstance(batch, tuple):  # already collated: (images, labels)
            return (*batch, torch.as_tensor(indices, dtype=torch.long))
        return [None if item is None else (*item, i) for item, i in zip(batch, indices,
                                                                         strict=True)]


def collate_batch(batch) -> Batch:
    """Collate what ``WithIndices.__getitems__`` returns into a `Batch`.

    Items that failed to decode are dropped, their indices with them.
    """
    if isinstance(batch, tuple):
        return as_batch(*batch)
    items = [it for it in batch if it is not None]
    images, labels = collate_images([(image, label) for image, label, _ in items])
    return as_batch(images, labels, torch.tensor([i for _, _, i in items], dtype=torch.long))
