"""Run the probes a user asked for on an encoder and a data source."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from torch import nn

from ..backbones import Preprocessing
from ..collapse import CollapseCheck, embedding_std, rankme
from ..data import DataSource, sample_split, stratified_holdout
from .features import extract_features, raw_pixels
from .fewshot import fewshot_curve
from .layers import layer_features, layer_probes
from .probes import knn_accuracy, linear_probe, nb_accuracy

PROTOCOLS = ("knn", "linear", "nb", "fewshot", "layers", "rankme", "raw_knn")
DEFAULT_PROTOCOLS = ("knn", "linear", "rankme", "raw_knn")
LABEL_FREE = ("rankme",)  # the protocols a source without labels can still run
RANKME_SAMPLES = 2048  # training images RankMe is measured on when a source has no labels


def has_labels(source: DataSource) -> bool:
    return source.train.labels is not None


def train_test(source: DataSource):
    """The source's own split, or a stratified 20% held out when it has none."""
    if source.test is not None:
        return source.train, source.test, "source split"
    train, test = stratified_holdout(source.train, fraction=0.2, seed=0)
    return train, test, "stratified 20% holdout"


def check_protocols(protocols) -> None:
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise ValueError(f"unknown protocol(s) {unknown}; valid: {', '.join(PROTOCOLS)}")


def evaluate_encoder(encoder: nn.Module, source: DataSource,
                     protocols: list[str] | tuple[str, ...] = ("knn", "linear", "rankme"),
                     k: int = 200, temperature: float = 0.1, bf16: bool = False,
                     preprocessing: Preprocessing | None = None,
                     projector: nn.Module | None = None,
                     rankme_samples: int = RANKME_SAMPLES) -> dict[str, Any]:
    """Frozen-feature evaluation. Returns a dict ready for eval.json.

    Features go through the encoder's own preprocessing unless ``preprocessing`` overrides it
    (recorded either way). ``projector`` adds the post-projection features to ``layers``.
    A source without labels gets the label-free monitors only (`label_free_evaluation`).
    """
    check_protocols(protocols)
    if not has_labels(source):
        return label_free_evaluation(encoder, source, protocols, bf16, preprocessing,
                                     rankme_samples)
    train, test, split_kind = train_test(source)
    pre = preprocessing or encoder.preprocessing
    t0 = time.perf_counter()
    if "layers" in protocols:
        # one pass gives every stage; the last stage pooled is the encoder's own output
        tr_layers, tr_y = layer_features(encoder, train, projector, pre, bf16=bf16)
        te_layers, te_y = layer_features(encoder, test, projector, pre, bf16=bf16)
        last = [k for k in tr_layers if k != "projection"][-1]  # the encoder's own output
        tr_x, te_x = tr_layers[last], te_layers[last]
    else:
        tr_x, tr_y = extract_features(encoder, train, bf16=bf16, preprocessing=pre)
        te_x, te_y = extract_features(encoder, test, bf16=bf16, preprocessing=pre)
    out: dict[str, Any] = {
        "data": source.name, "split": split_kind, "n_train": int(len(tr_y)),
        "n_test": int(len(te_y)), "feature_dim": int(tr_x.shape[1]),
        "preprocessing": pre.to_dict(),
        "preprocessing_overridden": preprocessing is not None
        and preprocessing != encoder.preprocessing,
    }
    seconds = {"features": round(time.perf_counter() - t0, 2)}

    def timed(name, fn):
        t = time.perf_counter()
        result = fn()
        seconds[name] = round(time.perf_counter() - t, 2)
        return result

    if "knn" in protocols:
        out["knn_top1"] = timed("knn", lambda: knn_accuracy(tr_x, tr_y, te_x, te_y, k,
                                                            temperature))
        out["knn"] = {"k": k, "temperature": temperature}
    if "linear" in protocols:
        lin = timed("linear", lambda: linear_probe(tr_x, tr_y, te_x, te_y))
        out["linear_top1"] = lin.pop("top1")
        out["linear"] = lin
    if "nb" in protocols:
        out["nb_top1"] = timed("nb", lambda: nb_accuracy(tr_x, tr_y, te_x, te_y))
    if "fewshot" in protocols:
        out["fewshot"] = timed("fewshot", lambda: fewshot_curve(tr_x, tr_y, te_x, te_y))
    if "layers" in protocols:
        out["layers"] = timed("layers", lambda: layer_probes(tr_layers, tr_y, te_layers, te_y,
                                                             k, temperature))
    if "rankme" in protocols:
        out |= representation_health(te_x)
    if "raw_knn" in protocols:
        def raw():
            rx, ry = raw_pixels(train, pre.input_size)
            qx, qy = raw_pixels(test, pre.input_size)
            return knn_accuracy(rx, ry, qx, qy, k, temperature)
        out["raw_pixels_knn_top1"] = timed("raw_knn", raw)
    out["seconds"] = seconds
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return {k2: (float(v) if isinstance(v, np.floating) else v) for k2, v in out.items()}


def representation_health(features: np.ndarray) -> dict[str, Any]:
    """RankMe, the normalized embeddings' std and the collapse check on features (N, D)."""
    rank, std = rankme(features), embedding_std(features)
    reasons = CollapseCheck().reasons(rank, std, features.shape[1])
    return {"rankme": rank, "embedding_std": std,
            "collapse": {"collapsed": bool(reasons), "reasons": reasons}}


def label_free_evaluation(encoder: nn.Module, source: DataSource, protocols, bf16: bool = False,
                          preprocessing: Preprocessing | None = None,
                          rankme_samples: int = RANKME_SAMPLES) -> dict[str, Any]:
    """What a source without labels allows: RankMe and the collapse check on a fixed sample of
    its training images (no augmentation, the encoder's own preprocessing unless overridden).
    The protocols that need labels are listed under ``skipped``."""
    pre = preprocessing or encoder.preprocessing
    t0 = time.perf_counter()
    out: dict[str, Any] = {
        "data": source.name, "split": "no labels", "n_train": len(source.train),
        "preprocessing": pre.to_dict(),
        "preprocessing_overridden": preprocessing is not None
        and preprocessing != encoder.preprocessing,
        "skipped": {p: "no labels" for p in protocols if p not in LABEL_FREE},
    }
    if "rankme" in protocols:
        sample = sample_split(source.train, rankme_samples)
        x, _ = extract_features(encoder, sample, bf16=bf16, preprocessing=pre)
        out |= {"rankme_samples": int(len(x)), "feature_dim": int(x.shape[1]),
                **representation_health(x)}
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return out
