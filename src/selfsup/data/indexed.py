"""Training batches that carry each sample's dataset index, for per-sample method state."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from .split import collate_images


class WithIndices(Dataset):
    """Wraps a split's dataset so a batch is (uint8 images, labels, int64 dataset indices).

    Methods that keep state per training sample (iSogCLR's temperatures) look it up by these
    indices. An in-memory dataset still fetches a whole batch in one ``__getitems__``; a folder
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


def collate_with_indices(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Collate what ``WithIndices.__getitems__`` returns into (images, labels, indices).

    Items that failed to decode are dropped, their indices with them.
    """
    if isinstance(batch, tuple):
        return batch
    items = [it for it in batch if it is not None]
    images, labels = collate_images([(image, label) for image, label, _ in items])
    return images, labels, torch.tensor([i for _, _, i in items], dtype=torch.long)
