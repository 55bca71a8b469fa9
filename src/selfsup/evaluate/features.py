"""Frozen features, always computed with the encoder's own preprocessing."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..backbones import Preprocessing
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


def parse_preprocessing(spec: str, own: Preprocessing,
                        native_size: int | None = None) -> Preprocessing:
    """An evaluation-time override of an encoder's preprocessing.

    ``spec`` is ``none`` (pixels in [0, 1] at the source's own size ``native_size``, no
    normalization) or comma-separated ``size=S``, ``mean=M``, ``std=S`` and
    ``resize=resize_exact|resize_shorter_center_crop``; a mean or std is one value for every
    channel or one per channel separated by ``:`` (``mean=0.48:0.46:0.41``). Unset keys keep the
    encoder's own values.
    """
    if spec.strip().lower() == "none":
        size = native_size or own.input_size
        return Preprocessing(size, own.channels, (0.0,) * own.channels, (1.0,) * own.channels,
                             own.resize_rule)
    fields = {"size": own.input_size, "mean": own.mean, "std": own.std,
              "resize": own.resize_rule}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in fields or not value:
            raise ValueError(f"preprocessing override {item!r} not understood; use none or "
                             "size=S,mean=M,std=S,resize=R (e.g. size=32,mean=0.5,std=0.5)")
        try:
            if key == "size":
                fields["size"] = int(value)
            elif key in ("mean", "std"):
                values = tuple(float(v) for v in value.split(":"))
                fields[key] = values * own.channels if len(values) == 1 else values
            else:
                fields["resize"] = value.strip()
        except ValueError:
            raise ValueError(f"preprocessing override {item!r}: {value!r} is not a number"
                             ) from None
    return Preprocessing(fields["size"], own.channels, fields["mean"], fields["std"],
                         fields["resize"])


@torch.no_grad()
def extract_features(encoder: nn.Module, split: Split, batch_size: int = 512,
                     bf16: bool = False, preprocessing: Preprocessing | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Pooled encoder features (N, D) float32 and labels (N,) for a split, through the encoder's
    own preprocessing unless ``preprocessing`` overrides it."""
    encoder.eval()
    device = next(encoder.parameters()).device
    pre = preprocessing or encoder.preprocessing
    feats, labels = [], []
    for images, y in iter_uint8_batches(split, batch_size):
        x = pre(images.to(device))
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
