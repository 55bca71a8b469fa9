"""Probes on every depth of an encoder: each backbone stage's pooled output, and the features
before and after the method's projection head (the projection-head study of Chen et al. 2020,
"A Simple Framework for Contrastive Learning of Visual Representations", sec. 4.2: the
representation before the projector is the better one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from sklearn.model_selection import train_test_split
from torch import nn

from ..backbones import Preprocessing
from ..data import Split
from ..methods import get_method
from .features import iter_uint8_batches
from .probes import knn_accuracy, linear_probe, nb_accuracy

LAYER_MAX_TRAIN = 10_000  # training samples per layer probe: six layers x three probes add up


def load_projector(run_dir: str | Path, encoder: nn.Module) -> nn.Module | None:
    """The method's projection head of a run, rebuilt from ``config.yaml`` and filled from the
    checkpoint the encoder came from (``best.ckpt`` when it was selected by RankMe, else
    ``last.ckpt``), loaded with ``weights_only=True``. None when the method has no projector or
    the run kept no checkpoint."""
    from ..train.checkpoint_io import load_checkpoint_safely

    run_dir = Path(run_dir)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    meta = json.loads((run_dir / "encoder.json").read_text())
    name = "best.ckpt" if meta.get("selected_by") == "rankme" else "last.ckpt"
    ckpt_path = run_dir / "checkpoints" / name
    if not ckpt_path.is_file():
        return None
    args = cfg.get("resolved", {}).get("method_args", cfg.get("method_args", {}))
    # the views hold no weights and are not needed to embed: a placeholder stands in
    method = get_method(cfg["method"])(encoder, nn.Identity(), **args)
    projector = getattr(method, "projector", None)
    if projector is None:
        return None
    state = load_checkpoint_safely(ckpt_path)["state_dict"]
    prefix = "method.projector."
    projector.load_state_dict({k[len(prefix):]: v for k, v in state.items()
                               if k.startswith(prefix)})
    return projector.eval()


@torch.no_grad()
def layer_features(encoder: nn.Module, split: Split, projector: nn.Module | None = None,
                   preprocessing: Preprocessing | None = None, batch_size: int = 512,
                   bf16: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Globally average-pooled output of each stage (``stem``, ``layer1``..``layer4``; the last
    is the encoder's own output) and, given a projector, ``projection`` = projector(layer4).
    Returns ({name: (N, D_name) float32}, labels (N,))."""
    encoder.eval()
    device = next(encoder.parameters()).device
    pre = preprocessing or encoder.preprocessing
    names = ["stem", "layer1", "layer2", "layer3", "layer4"]
    feats: dict[str, list[torch.Tensor]] = {}
    labels = []
    for images, y in iter_uint8_batches(split, batch_size):
        x = pre(images.to(device)).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            if hasattr(encoder, "stages"):
                pooled = [m.mean(dim=(2, 3)) for m in encoder.stages(x)]  # (B, C_stage) each
                out = dict(zip(names, pooled, strict=True))
            else:
                out = {"features": encoder(x)}
            if projector is not None:
                last = out.get("layer4", out.get("features"))
                out["projection"] = projector(last)
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
