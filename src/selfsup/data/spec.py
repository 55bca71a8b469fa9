"""What a method is told about its data, and the statistics its preprocessing is fitted on."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch
from torch.utils.data import IterableDataset

from .split import DataSource, Split

MODALITIES = ("image", "table")


@dataclass(frozen=True)
class DataSpec:
    """A description of the training data a method is built for.

    ``shape`` is one sample's: (C, H, W) for images, (F,) for tables. ``num_samples`` sizes
    per-sample state (iSogCLR's temperatures, a queue no longer than the data);
    ``num_classes`` is None for an unlabeled source (labels never train a self-supervised
    method; SupCon's supervised variant and reports read them).
    """

    modality: str
    shape: tuple[int, ...]
    num_samples: int
    num_classes: int | None = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"unknown modality {self.modality!r}; valid: {MODALITIES}")

    @property
    def channels(self) -> int:
        return self.shape[0]

    def to_dict(self) -> dict:
        return asdict(self) | {"shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict) -> DataSpec:
        return cls(d["modality"], tuple(d["shape"]), int(d["num_samples"]),
                   d.get("num_classes"))


def describe(source: DataSource) -> DataSpec:
    """The `DataSpec` of a source's training split."""
    labels = source.train.labels
    classes = None
    regression = source.table is not None and source.table.task == "regression"
    if labels is not None and not regression and (labels >= 0).any():
        classes = len(source.classes) if source.classes else int(labels.max()) + 1
    if source.table is not None:
        return DataSpec("table", (source.table.num_features,), len(source.train), classes)
    shape = (source.channels, source.image_size, source.image_size)
    return DataSpec("image", shape, len(source.train), classes)


def channel_stats(split: Split, max_images: int = 10_000) -> tuple[tuple, tuple]:
    """Per-channel mean and std of a split's images (a sample of them for big sources): the
    normalization an image encoder's preprocessing is fitted with."""
    if split.images is not None:
        idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:max_images]
        x = split.images[idx].float() / 255.0
    else:
        n = min(len(split), 512)
        items = (list(itertools.islice(split.dataset, n)) if isinstance(split.dataset,
                 IterableDataset) else [split.dataset[i] for i in range(n)])
        x = torch.stack([it[0] for it in items if it is not None]).float() / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)
