"""Probes on frozen features: weighted kNN and a linear (logistic regression) probe."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


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


def linear_accuracy(train_x, train_y, test_x, test_y, C: float = 1.0, max_iter: int = 300) -> float:
    """Multinomial logistic regression on standardized features (scikit-learn, lbfgs).

    ``max_iter`` bounds the probe's cost on 60k samples; lbfgs may stop a little short of its
    tolerance there, which moves accuracy by hundredths of a point, so that warning is muted.
    """
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(train_x, train_y)
    return float(clf.score(test_x, test_y))
