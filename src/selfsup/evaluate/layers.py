"""Probes on every depth of an encoder: each backbone stage's pooled output, and the features
before and after the method's projection head (the projection-head study of Chen et al. 2020,
"A Simple Framework for Contrastive Learning of Visual Representations", sec. 4.2: the
representation before the projector is the better one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn

from ..backbones import Preprocessing
from ..data import Split
from ..methods.saved import saved_method
from .features import iter_uint8_batches
from .probes import knn_accuracy, linear_probe, nb_accuracy

LAYER_MAX_TRAIN = 10_000  # training samples per layer probe: six layers x three probes add up


def load_projector(run_dir: str | Path, encoder: nn.Module) -> nn.Module | None:
    """The method's projection head of a run (see `saved_method`); None when the method has
    no projector or the run kept no checkpoint."""
    method = saved_method(str(run_dir), encoder)
    projector = getattr(method, "projector", None) if method is not None else None
    return projector.eval() if projector is not None else None


@torch.no_grad()
def layer_features(encoder: nn.Module, split: Split, projector: nn.Module | None = None,
                   preprocessing: Preprocessing | None = None, batch_size: int = 512,
                   bf16: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The encoder's pooled features at each depth (its ``named_features``: a ResNet's stem and
    stages, a ViT's blocks; the last is the encoder's own output) and, given a projector,
    ``projection`` = projector(last).
    Returns ({name: (N, D_name) float32}, labels (N,))."""
    encoder.eval()
    device = next(encoder.parameters()).device
    pre = preprocessing or encoder.preprocessing
    feats: dict[str, list[torch.Tensor]] = {}
    labels = []
    for images, y in iter_uint8_batches(split, batch_size):
        x = pre(images.to(device))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            if hasattr(encoder, "named_features"):
                out = encoder.named_features(x)  # {name: (B, D_name)}, the last = encoder(x)
            else:
                out = {"features": encoder(x)}
            if projector is not None:
                out["projection"] = projector(list(out.values())[-1])
        for k, v in out.items():
            feats.setdefault(k, []).append(v.float().cpu())
        labels.append(y)
    return ({k: torch.cat(v).numpy() for k, v in feats.items()},
            torch.cat(labels).numpy())


def layer_probes(train: dict[str, np.ndarray], train_y: np.ndarray,
                 test: dict[str, np.ndarray], test_y: np.ndarray, k: int = 200,
                 temperature: float = 0.1, max_train: int = LAYER_MAX_TRAIN, seed: int = 0
                 ) -> dict[str, dict[str, Any]]:
    """kNN, linear (C chosen on held-out training data) and naive Bayes top-1 per layer.

    Training sets above ``max_train`` are subsampled (stratified, the same samples for every
    layer) to keep the whole study within about a minute on a laptop CPU."""
    idx = np.arange(len(train_y))
    if len(idx) > max_train:
        idx, _ = train_test_split(idx, train_size=max_train, stratify=train_y, random_state=seed)
    y = train_y[idx]
    out = {}
    for name, x in train.items():
        x = x[idx]
        lin = linear_probe(x, y, test[name], test_y, seed=seed)
        out[name] = {"dim": int(x.shape[1]),
                     "knn_top1": knn_accuracy(x, y, test[name], test_y, k, temperature),
                     "linear_top1": lin["top1"], "linear_C": lin["C"],
                     "nb_top1": nb_accuracy(x, y, test[name], test_y)}
    return out
