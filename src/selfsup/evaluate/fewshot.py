"""Few-shot curves: probe accuracy against the fraction of training labels, with variance over
class-balanced subsets."""

from __future__ import annotations

from typing import Any

import numpy as np

from .probes import linear_probe, nb_accuracy

FRACTIONS = (0.01, 0.05, 0.10, 0.25, 1.0)
SEEDS = (0, 1, 2)


def balanced_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a class-balanced subset: every class contributes the same number of samples,
    max(1, round(fraction * N / num_classes)), or all it has when it has fewer. ``fraction`` 1
    is the whole set."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return np.arange(len(labels))
    classes = np.unique(labels)
    per_class = max(1, round(fraction * len(labels) / len(classes)))
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in classes]
    return np.sort(np.concatenate(picks))


def fewshot_curve(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                  test_y: np.ndarray, fractions: tuple[float, ...] = FRACTIONS,
                  seeds: tuple[int, ...] = SEEDS, probes: tuple[str, ...] = ("linear", "nb")
                  ) -> dict[str, Any]:
    """For each fraction and probe: mean and std of test accuracy over ``seeds`` subsets.

    The linear probe chooses its C on each subset's own labels (falling back to C=1 when a
    subset is too small to hold any out), so a point never uses labels beyond its budget. The
    100% point has one subset (the whole set), so its std is 0.
    """
    unknown = sorted(set(probes) - {"linear", "nb"})
    if unknown:
        raise ValueError(f"unknown few-shot probe(s) {unknown}; valid: linear, nb")
    out: dict[str, Any] = {"fractions": list(fractions), "seeds": list(seeds)}
    for probe in probes:
        rows = []
        for f in fractions:
            scores, sizes = [], []
            for seed in (seeds if f < 1 else seeds[:1]):
                idx = balanced_subset(train_y, f, seed)
                x, y = train_x[idx], train_y[idx]
                if probe == "linear":
                    scores.append(linear_probe(x, y, test_x, test_y, seed=seed)["top1"])
                else:
                    scores.append(nb_accuracy(x, y, test_x, test_y))
                sizes.append(len(idx))
            rows.append({"fraction": f, "n_labels": int(sizes[0]), "mean": float(np.mean(scores)),
                         "std": float(np.std(scores)), "runs": [float(s) for s in scores]})
        out[probe] = rows
    return out
