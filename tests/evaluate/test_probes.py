import math

import numpy as np
import pytest
import torch

from selfsup.evaluate import (
    knn_accuracy,
    knn_predict,
    linear_accuracy,
    linear_probe,
    nb_accuracy,
    rankme,
)
from selfsup.evaluate.probes import C_GRID, select_C


def _blobs(n_per_class=100, classes=4, dim=16, seed=0, spread=0.3):
    # the class centres are fixed; ``seed`` draws new samples around them
    centers = np.random.default_rng(123).normal(size=(classes, dim)) * 3
    rng = np.random.default_rng(seed)
    x = np.concatenate([c + spread * rng.normal(size=(n_per_class, dim)) for c in centers])
    y = np.repeat(np.arange(classes), n_per_class)
    return x.astype(np.float32), y


def _slow_knn(train_x, train_y, test_x, k, t):
    preds = []
    for q in test_x:
        sims = [float(np.dot(q, x) / (np.linalg.norm(q) * np.linalg.norm(x))) for x in train_x]
        order = sorted(range(len(sims)), key=lambda i: -sims[i])[:k]
        votes = {}
        for i in order:
            votes[train_y[i]] = votes.get(train_y[i], 0.0) + math.exp(sims[i] / t)
        preds.append(max(votes, key=votes.get))
    return np.array(preds)


def test_knn_matches_slow_reference():
    x, y = _blobs(20, 3, 5, spread=2.0)
    q, _ = _blobs(5, 3, 5, seed=1, spread=2.0)
    np.testing.assert_array_equal(knn_predict(x, y, q, k=7, temperature=0.1),
                                  _slow_knn(x, y, q, 7, 0.1))


def test_knn_hand_computed_weighting():
    # query (1, 0); neighbours: class 0 at cos 1.0, class 1 twice at cos 0.8 (k=3, T=0.1):
    # class 0 scores e^10 = 22026; class 1 scores 2 e^8 = 5962 -> class 0 wins despite 1 vs 2
    train = np.array([[1, 0], [0.8, 0.6], [0.8, -0.6]], dtype=np.float32)
    assert knn_predict(train, np.array([0, 1, 1]), np.array([[1.0, 0.0]]), k=3,
                       temperature=0.1)[0] == 0
    # at T=1 the weights are e^1 = 2.72 vs 2 e^0.8 = 4.45: the majority wins
    assert knn_predict(train, np.array([0, 1, 1]), np.array([[1.0, 0.0]]), k=3,
                       temperature=1.0)[0] == 1


def test_probes_on_separable_and_shuffled():
    x, y = _blobs()
    rng = np.random.default_rng(1)
    x2, y2 = _blobs(seed=2)
    assert knn_accuracy(x, y, x2, y2, k=20) > 0.98
    assert linear_accuracy(x, y, x2, y2) > 0.98
    assert linear_probe(x, y, x2, y2)["top1"] > 0.98
    assert nb_accuracy(x, y, x2, y2) > 0.98
    shuffled = rng.permutation(y)
    # 4 classes: chance is 0.25
    assert knn_accuracy(x, shuffled, x2, y2, k=20) < 0.45
    assert linear_accuracy(x, shuffled, x2, y2) < 0.45
    assert linear_probe(x, shuffled, x2, y2)["top1"] < 0.45
    assert nb_accuracy(x, shuffled, x2, y2) < 0.45


def _slow_gaussian_nb(train_x, train_y, test_x, var_smoothing=1e-9):
    """Naive Bayes written out: standardize with the training mean/std, then per class a prior
    and one Gaussian per dimension; predict argmax_y log p(y) + sum_d log N(x_d; mu, var)."""
    train_x, test_x = train_x.astype(np.float64), test_x.astype(np.float64)
    mean, std = train_x.mean(0), train_x.std(0)
    std[std == 0] = 1.0
    tr, te = (train_x - mean) / std, (test_x - mean) / std
    eps = var_smoothing * tr.var(0).max()
    classes = sorted(set(train_y.tolist()))
    preds = []
    for q in te:
        best, best_score = None, -math.inf
        for c in classes:
            rows = [tr[i] for i in range(len(tr)) if train_y[i] == c]
            score = math.log(len(rows) / len(tr))
            for d in range(tr.shape[1]):
                values = [r[d] for r in rows]
                mu = sum(values) / len(values)
                var = sum((v - mu) ** 2 for v in values) / len(values) + eps
                score += -0.5 * math.log(2 * math.pi * var) - (q[d] - mu) ** 2 / (2 * var)
            if score > best_score:
                best, best_score = c, score
        preds.append(best)
    return np.array(preds)


def test_nb_matches_literal_gaussian_bayes():
    x, y = _blobs(15, 3, 4, spread=3.0)
    q, qy = _blobs(10, 3, 4, seed=5, spread=3.0)
    expected = _slow_gaussian_nb(x, y, q)
    assert nb_accuracy(x, y, q, expected) == 1.0
    assert 0.3 < (expected == qy).mean() < 1.0  # the case is not trivially separable


def test_nb_hand_computed_one_dimension():
    # class 0 at {-1, 1} (mean 0, var 1), class 1 at {3, 5, 7} (mean 5, var 8/3), so after
    # standardization the decision is that of the raw Gaussians: x = 2.0 scores
    # log(2/5) - 0.5 log(2 pi) - 4/2 = -3.835 for class 0 and
    # log(3/5) - 0.5 log(2 pi 8/3) - 9/(16/3) = -3.608 for class 1 -> class 1;
    # x = 1.5 scores log(2/5) - 0.5 log(2 pi) - 2.25/2 = -2.960
    # vs log(3/5) - 0.5 log(2 pi 8/3) - 12.25/(16/3) = -4.217 -> class 0
    x = np.array([[-1.0], [1.0], [3.0], [5.0], [7.0]])
    y = np.array([0, 0, 1, 1, 1])
    assert nb_accuracy(x, y, np.array([[2.0], [1.5]]), np.array([1, 0])) == 1.0


def test_select_C_prefers_regularization_when_labels_are_few_and_noisy():
    # 4 noisy dims carry the label, 200 dims are noise: with 60 samples, weak regularization
    # (C=10) fits the noise; the search must not pick it and must never look at test data
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 204))
    y = np.repeat([0, 1], 30)
    x[:, :4] += 0.8 * (2 * y[:, None] - 1)
    C, scores = select_C(x, y)
    assert C in C_GRID and set(scores) == set(C_GRID)
    assert scores[C] == max(scores.values()) and C < 10.0
    # too few samples per class to hold any out: no search, the caller's default applies
    assert select_C(x[[0, 1, 30, 31]], y[[0, 1, 30, 31]]) == (None, {})
    result = linear_probe(x[[0, 30]], y[[0, 30]], x, y, default_C=0.5)
    assert result["C"] == 0.5 and result["val_top1_by_C"] == {}


def test_rankme_hand_computed():
    # r equal singular values -> p_k = 1/r -> exp(entropy) = r
    z = torch.zeros(10, 6, dtype=torch.float64)
    for i in range(3):
        z[i, i] = 2.0
    assert rankme(z) == pytest.approx(3.0, rel=1e-5)
    # singular values 3 and 1: p = (0.75, 0.25), exp(-(0.75 ln 0.75 + 0.25 ln 0.25)) = 1.7548
    z = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
    assert rankme(z) == pytest.approx(1.7548, abs=1e-3)
    # a collapsed representation has rank one
    assert rankme(torch.ones(50, 8)) == pytest.approx(1.0, abs=1e-3)
