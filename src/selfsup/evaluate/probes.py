"""Probes on frozen features: weighted kNN, a linear (logistic regression) probe with its L2
strength chosen on held-out training data, and Gaussian naive Bayes."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

# Inverse L2 strengths tried by the linear probe; a decade apart is enough to find the regime
# (under- vs over-regularized) without multiplying the probe's cost.
C_GRID = (0.01, 0.1, 1.0, 10.0)
C_SEARCH_MAX = 10_000  # training samples the C search may use (it is subsampled above this)
# The probes' products are thin (N x D by D x classes): more BLAS threads save little, and on a
# busy CPU their spin-waiting made a 1.4k-sample fit 100x slower (3.4 s against 0.03 s).
PROBE_BLAS_THREADS = 1


@torch.no_grad()
def knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int = 200,
                temperature: float = 0.1, num_classes: int | None = None,
                chunk: int = 1024) -> np.ndarray:
    """Weighted kNN of Wu et al. 2018 ("Unsupervised Feature Learning via Non-Parametric Instance
    Discrimination", eq. 9 as used by lightly and solo-learn): cosine similarity s_i to the k
    nearest training features; class score = sum over neighbours of that class of exp(s_i / T)."""
    train = F.normalize(torch.as_tensor(train_x, dtype=torch.float32), dim=1)  # (N, D)
    test = F.normalize(torch.as_tensor(test_x, dtype=torch.float32), dim=1)  # (M, D)
    labels = torch.as_tensor(train_y, dtype=torch.long)
    c = int(num_classes if num_classes is not None else labels.max() + 1)
    k = min(k, train.shape[0])
    preds = []
    for i in range(0, test.shape[0], chunk):
        sim = test[i : i + chunk] @ train.T  # (m, N)
        top_sim, top_idx = sim.topk(k, dim=1)  # (m, k)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(sim.shape[0], c).scatter_add_(1, labels[top_idx], weights)  # (m, C)
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds).numpy()


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 200, temperature: float = 0.1) -> float:
    num_classes = int(max(train_y.max(), test_y.max()) + 1)
    pred = knn_predict(train_x, train_y, test_x, k, temperature, num_classes)
    return float((pred == test_y).mean())


def _logistic(C: float, max_iter: int):
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))


def _fit_quietly(clf, x, y):
    # lbfgs may stop a little short of its tolerance within max_iter on 60k samples, which moves
    # accuracy by hundredths of a point; that warning is muted
    with warnings.catch_warnings(), threadpool_limits(PROBE_BLAS_THREADS):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(x, y)


def linear_accuracy(train_x, train_y, test_x, test_y, C: float = 1.0, max_iter: int = 300) -> float:
    """Multinomial logistic regression on standardized features (scikit-learn, lbfgs), fixed C."""
    clf = _fit_quietly(_logistic(C, max_iter), train_x, train_y)
    with threadpool_limits(PROBE_BLAS_THREADS):
        return float(clf.score(test_x, test_y))


def select_C(train_x: np.ndarray, train_y: np.ndarray, grid: tuple[float, ...] = C_GRID,
             val_fraction: float = 0.2, max_samples: int = C_SEARCH_MAX, max_iter: int = 100,
             seed: int = 0) -> tuple[float | None, dict[float, float]]:
    """The C of ``grid`` with the best accuracy on a stratified validation split of the training
    set (subsampled to ``max_samples`` first). Returns (None, {}) when some class has too few
    samples to hold any out: the caller then keeps its default C."""
    classes, counts = np.unique(train_y, return_counts=True)
    n_val = max(round(val_fraction * min(len(train_y), max_samples)), len(classes))
    if counts.min() < 2 or n_val >= len(train_y) - len(classes):
        return None, {}
    x, y = train_x, train_y
    if len(y) > max_samples:
        x, _, y, _ = train_test_split(x, y, train_size=max_samples, stratify=y, random_state=seed)
    fit_x, val_x, fit_y, val_y = train_test_split(x, y, test_size=n_val, stratify=y,
                                                  random_state=seed)
    scores = {}
    for C in grid:
        clf = _fit_quietly(_logistic(C, max_iter), fit_x, fit_y)
        with threadpool_limits(PROBE_BLAS_THREADS):
            scores[C] = float(clf.score(val_x, val_y))
    # ties go to the stronger regularization (smaller C): the simpler model
    best = max(grid, key=lambda C: (scores[C], -C))
    return best, scores


def linear_probe(train_x, train_y, test_x, test_y, grid: tuple[float, ...] = C_GRID,
                 max_iter: int = 300, default_C: float = 1.0, seed: int = 0) -> dict[str, Any]:
    """Linear probe with C chosen by `select_C`, then refit on the whole training set.

    Returns ``{"top1", "C", "val_top1_by_C"}``; test labels are never seen by the search."""
    C, scores = select_C(train_x, train_y, grid, seed=seed)
    chosen = C if C is not None else default_C
    top1 = linear_accuracy(train_x, train_y, test_x, test_y, C=chosen, max_iter=max_iter)
    return {"top1": top1, "C": chosen, "val_top1_by_C": {str(c): s for c, s in scores.items()}}


def nb_accuracy(train_x, train_y, test_x, test_y) -> float:
    """Gaussian naive Bayes on standardized features: the generative probe of Zheng et al. 2023
    ("Revisiting Discriminative vs. Generative Classifiers: Theory and Implications"), which
    approaches its asymptotic error with O(log n) samples where logistic regression needs O(n).
    One diagonal Gaussian per class: argmax_y log p(y) + sum_d log N(x_d; mu_yd, sigma_yd^2)."""
    with threadpool_limits(PROBE_BLAS_THREADS):
        clf = make_pipeline(StandardScaler(), GaussianNB()).fit(train_x, train_y)
        return float(clf.score(test_x, test_y))
