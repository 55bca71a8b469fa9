import math

import numpy as np
import pytest
import torch

from selfsup.evaluate import knn_accuracy, knn_predict, linear_accuracy, rankme


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
    shuffled = rng.permutation(y)
    assert knn_accuracy(x, shuffled, x2, y2, k=20) < 0.45  # chance is 0.25
    assert linear_accuracy(x, shuffled, x2, y2) < 0.45


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
