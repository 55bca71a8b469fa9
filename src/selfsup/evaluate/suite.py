"""Run the probes a user asked for on an encoder and a data source."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from torch import nn

from ..backbones import Preprocessing
from ..collapse import CollapseCheck, embedding_std, rankme
from ..data import DataSource, Split, sample_split, stratified_holdout, stratified_sample
from ..data.split import random_holdout
from .baseline_cache import cached_knn
from .features import extract_features, raw_pixels, raw_table_features
from .fewshot import fewshot_curve
from .layers import layer_features, layer_probes
from .probes import knn_accuracy, linear_probe, nb_accuracy
from .table_probes import (
    TABLE_PROBES,
    categorical_mask,
    probe_inputs,
    ridge_probe,
    table_probes,
)

PROTOCOLS = ("knn", "linear", "nb", "fewshot", "layers", "rankme", "raw_knn", *TABLE_PROBES)
# class probes, which a regression target skips (its linear probe is a ridge regression)
CLASSIFICATION_ONLY = ("knn", "nb", "fewshot", "layers", "raw_knn")
DEFAULT_PROTOCOLS = ("knn", "linear", "rankme", "raw_knn")
LABEL_FREE = ("rankme",)  # the protocols a source without labels can still run
RANKME_SAMPLES = 2048  # training images RankMe is measured on when a source has no labels
# raw pixels the raw_knn baseline may hold: all of Fashion-MNIST (188 MB) and CIFAR-10 (614 MB);
# a sample of a larger source (21,845 images of 64x64 RGB)
RAW_KNN_BYTES = 1 << 30
# What the probes fit on and are scored on by default (None or 0: all of a split): class-
# stratified, seeded samples. The training split keeps as many images as hold PROBE_TRAIN_VALUES
# input values (C x H x W each; "auto"): all of Fashion-MNIST (60,000 x 784) and CIFAR-10
# (50,000 x 3,072), whose scores stay comparable with every earlier table, and 13,020 images of a
# 64 px RGB folder, where the features dominate what a user waits for. On a 100,000-image 64 px
# folder (200 classes, 20% held out) these bounds (13,020 training and 10,000 test images) keep
# the evaluation after pretraining at 105 s on 2 cores, under a fifth of the default 10-minute
# budget; both whole splits take 328 s. What a sample costs, on CIFAR-10 against all 50,000:
# 10,000 images 4.7 kNN and 2.6 linear points, 20,000 2.7 and 1.2 (benchmarks/eval_sample.py).
# 10,000 test images is Fashion-MNIST's and CIFAR-10's own test split.
PROBE_TRAIN_VALUES = 160_000_000
DEFAULT_TRAIN_SAMPLES = "auto"
DEFAULT_TEST_SAMPLES = 10_000


def has_labels(source: DataSource) -> bool:
    return source.train.labels is not None


def target_task(source: DataSource) -> str:
    """classification (every image source; a table's class target) or regression."""
    return source.table.task if source.table is not None and source.table.task else \
        "classification"


def train_test(source: DataSource):
    """The source's own split, or a stratified 20% held out when it has none (a uniform one
    for a regression target)."""
    if source.test is not None:
        return source.train, source.test, "source split"
    if target_task(source) == "regression":
        return (*random_holdout(source.train, fraction=0.2, seed=0), "random 20% holdout")
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
                     rankme_samples: int = RANKME_SAMPLES,
                     train_samples: int | str | None = DEFAULT_TRAIN_SAMPLES,
                     test_samples: int | None = DEFAULT_TEST_SAMPLES) -> dict[str, Any]:
    """Frozen-feature evaluation. Returns a dict ready for eval.json.

    The probes (and the raw-pixel baseline) fit on a class-stratified sample of at most
    ``train_samples`` images of the training split ("auto": as many as hold
    `PROBE_TRAIN_VALUES` input values) and are scored on one of at most
    ``test_samples`` test images (RankMe too), the same for every encoder on the same source
    (`probe_sample`; None or 0: the whole split). A sample taken is recorded as
    ``probe_train_samples`` / ``probe_test_samples``: ``{"used", "of"}``.

    Features go through the encoder's own preprocessing unless ``preprocessing`` overrides it
    (recorded either way). ``projector`` adds the post-projection features to ``layers``.
    A source without labels gets the label-free monitors only (`label_free_evaluation`).
    A regression target skips the class probes (`CLASSIFICATION_ONLY`, named under
    ``skipped``) and its ``linear`` probe is a ridge regression (``linear_rmse``, ``linear_r2``).
    The table probes (``mlp``, ``raw_mlp``, ``gbt``: `table_probes`) go under ``table_probes``.
    """
    check_protocols(protocols)
    if not has_labels(source):
        return label_free_evaluation(encoder, source, protocols, bf16, preprocessing,
                                     rankme_samples)
    train, test, split_kind = train_test(source)
    train, test, sampled = probe_samples(train, test, train_samples, test_samples,
                                         (preprocessing or encoder.preprocessing).input_dim)
    pre = preprocessing or encoder.preprocessing
    task = target_task(source)
    skipped = {p: "a class probe; the target is a regression target (see linear, mlp, raw_mlp, "
               "gbt)" for p in protocols if task == "regression" and p in CLASSIFICATION_ONLY}
    skipped |= {p: "a table encoder's probe" for p in protocols
                if p in TABLE_PROBES and pre.modality != "table"}
    protocols = [p for p in protocols if p not in skipped]
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
    out |= sampled
    if source.table is not None:
        out["task"] = task
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
    if "linear" in protocols and task == "regression":
        lin = timed("linear", lambda: ridge_probe(tr_x, tr_y, te_x, te_y))
        out["linear_rmse"], out["linear_r2"] = lin.pop("rmse"), lin.pop("r2")
        out["linear"] = lin
    elif "linear" in protocols:
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
        out |= representation_health(te_x, pre.input_dim)
    # the raw-input baselines do not depend on the encoder: remembered by content
    # (baseline_cache.py); raw_knn_cached says when this one was read rather than computed
    if "raw_knn" in protocols and pre.modality == "table":
        def raw_table():  # standardized values, indicators and one-hot categories
            rx, ry = raw_table_features(train, pre)
            qx, qy = raw_table_features(test, pre)
            return cached_knn(rx, ry, qx, qy, k, temperature)
        out["raw_features_knn_top1"], hit = timed("raw_knn", raw_table)
    elif "raw_knn" in protocols:
        raw_train, raw_test = raw_knn_samples(train, test, pre.input_size, source.channels)

        def raw():
            rx, ry = raw_pixels(raw_train, pre.input_size)
            qx, qy = raw_pixels(raw_test, pre.input_size)
            return cached_knn(rx, ry, qx, qy, k, temperature)
        out["raw_pixels_knn_top1"], hit = timed("raw_knn", raw)
        if (len(raw_train), len(raw_test)) != (len(train), len(test)):
            out["raw_knn_samples"] = {"train": len(raw_train), "test": len(raw_test)}
    if "raw_knn" in protocols and hit:
        out["raw_knn_cached"] = True
    tables = [p for p in protocols if p in TABLE_PROBES]
    if tables:
        out["table_probes"] = timed("table_probes", lambda: table_probes(
            tables, task, tr_y, te_y, probe_inputs(tables, (tr_x, te_x), train, test, pre),
            categorical_mask(pre)))
    if skipped:
        out["skipped"] = skipped
    out["seconds"] = seconds
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return {k2: (float(v) if isinstance(v, np.floating) else v) for k2, v in out.items()}


def probe_samples(train: Split, test: Split, train_samples: int | str | None,
                  test_samples: int | None, input_dim: int | None = None
                  ) -> tuple[Split, Split, dict[str, Any]]:
    """`probe_sample` of each split, and the record of the samples taken
    (``probe_train_samples`` / ``probe_test_samples``: ``{"used", "of"}``). ``train_samples``
    "auto": as many as hold `PROBE_TRAIN_VALUES` inputs of ``input_dim`` values each."""
    if train_samples == "auto":
        train_samples = max(1, PROBE_TRAIN_VALUES // max(1, input_dim or 1))
    parts = probe_sample(train, train_samples), probe_sample(test, test_samples)
    record = {f"probe_{name}_samples": {"used": len(part), "of": len(whole)}
              for name, whole, part in zip(("train", "test"), (train, test), parts, strict=True)
              if len(part) < len(whole)}
    return *parts, record


def probe_sample(split: Split, samples: int | None) -> Split:
    """The part of a split the probes use: a class-stratified sample of ``samples`` images,
    seeded so that every encoder evaluated on a source is probed on the same images (None or
    0: the whole split). Bounded samples keep the evaluation after pretraining a small part of
    the run on a large folder (benchmarks/eval_sample.py)."""
    return stratified_sample(split, samples, seed=0) if samples else split


def raw_knn_samples(train: Split, test: Split, size: int, channels: int) -> tuple[Split, Split]:
    """Fixed samples of the splits whose raw pixels (float32, C*S*S each) fit `RAW_KNN_BYTES`
    (train) and a quarter of it (test): encoder features are small, but the raw-pixel baseline
    of a large folder would otherwise hold every image, as floats, at once."""
    per_image = 4 * channels * size * size
    return (sample_split(train, max(1, RAW_KNN_BYTES // per_image)),
            sample_split(test, max(1, RAW_KNN_BYTES // 4 // per_image)))


def representation_health(features: np.ndarray, input_dim: int | None = None
                          ) -> dict[str, Any]:
    """RankMe, the normalized embeddings' std and the collapse check on features (N, D) of
    inputs of ``input_dim`` values (`CollapseCheck`)."""
    rank, std = rankme(features), embedding_std(features)
    reasons = CollapseCheck().reasons(rank, std, features.shape[1], input_dim)
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
                **representation_health(x, pre.input_dim)}
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return out
