"""Frozen features, always computed with the encoder's own preprocessing."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data import Split


def iter_uint8_batches(split: Split, batch_size: int = 512, num_workers: int = 0):
    """Yield (uint8 images (B, C, H, W), int64 labels (B,)) over a split, in order."""
    if split.images is not None:
        labels = (torch.as_tensor(split.labels) if split.labels is not None
                  else torch.full((len(split),), -1, dtype=torch.long))
        for i in range(0, len(split), batch_size):
            yield split.images[i : i + batch_size], labels[i : i + batch_size]
    else:
        loader = DataLoader(split.dataset, batch_size=batch_size, shuffle=False,
                            num_workers=num_workers, collate_fn=split.collate_fn)
        yield from loader


@torch.no_grad()
def extract_features(encoder: nn.Module, split: Split, batch_size: int = 512,
                     bf16: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Pooled encoder features (N, D) float32 and labels (N,) for a split."""
    encoder.eval()
    device = next(encoder.parameters()).device
    feats, labels = [], []
    for images, y in iter_uint8_batches(split, batch_size):
        x = encoder.preprocessing(images.to(device)).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            f = encoder(x)
        feats.append(f.float().cpu())
        labels.append(y)
    return torch.cat(feats).numpy(), torch.cat(labels).numpy()


def raw_pixels(split: Split, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Flattened pixels in [0, 1] (N, C*H*W): the baseline every encoder must beat."""
    xs, ys = [], []
    for images, y in iter_uint8_batches(split):
        x = images.float() / 255.0
        if size is not None and x.shape[-1] != size:
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                                antialias=True)
        xs.append(x.flatten(1))
        ys.append(y)
    return torch.cat(xs).numpy(), torch.cat(ys).numpy()
