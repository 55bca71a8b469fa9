"""Run the probes a user asked for on an encoder and a data source."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from torch import nn

from ..data import DataSource, stratified_holdout
from .features import extract_features, raw_pixels
from .monitors import rankme
from .probes import knn_accuracy, linear_accuracy

PROTOCOLS = ("knn", "linear", "rankme", "raw_knn")


def train_test(source: DataSource):
    """The source's own split, or a stratified 20% held out when it has none."""
    if source.test is not None:
        return source.train, source.test, "source split"
    train, test = stratified_holdout(source.train, fraction=0.2, seed=0)
    return train, test, "stratified 20% holdout"


def evaluate_encoder(encoder: nn.Module, source: DataSource,
                     protocols: list[str] | tuple[str, ...] = ("knn", "linear", "rankme"),
                     k: int = 200, temperature: float = 0.1, bf16: bool = False) -> dict[str, Any]:
    """Frozen-feature evaluation. Returns a dict ready for eval.json."""
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise ValueError(f"unknown protocol(s) {unknown}; valid: {', '.join(PROTOCOLS)}")
    train, test, split_kind = train_test(source)
    if train.labels is None:
        raise ValueError(f"{source.name} has no labels: only label-free monitors can run")
    t0 = time.perf_counter()
    tr_x, tr_y = extract_features(encoder, train, bf16=bf16)
    te_x, te_y = extract_features(encoder, test, bf16=bf16)
    out: dict[str, Any] = {
        "data": source.name, "split": split_kind, "n_train": int(len(tr_y)),
        "n_test": int(len(te_y)), "feature_dim": int(tr_x.shape[1]),
        "preprocessing": encoder.preprocessing.to_dict(),
    }
    if "knn" in protocols:
        out["knn_top1"] = knn_accuracy(tr_x, tr_y, te_x, te_y, k, temperature)
        out["knn"] = {"k": k, "temperature": temperature}
    if "linear" in protocols:
        out["linear_top1"] = linear_accuracy(tr_x, tr_y, te_x, te_y)
    if "rankme" in protocols:
        out["rankme"] = rankme(te_x)
    if "raw_knn" in protocols:
        size = encoder.preprocessing.input_size
        rx, ry = raw_pixels(train, size)
        qx, qy = raw_pixels(test, size)
        out["raw_pixels_knn_top1"] = knn_accuracy(rx, ry, qx, qy, k, temperature)
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return {k2: (float(v) if isinstance(v, np.floating) else v) for k2, v in out.items()}
