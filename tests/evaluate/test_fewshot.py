import numpy as np
import pytest

from selfsup.evaluate import balanced_subset, fewshot_curve


def _blobs(n_per_class, classes=4, dim=8, seed=0):
    centers = np.random.default_rng(123).normal(size=(classes, dim)) * 3
    rng = np.random.default_rng(seed)
    x = np.concatenate([c + 0.3 * rng.normal(size=(n_per_class, dim)) for c in centers])
    return x.astype(np.float32), np.repeat(np.arange(classes), n_per_class)


def test_balanced_subset_counts():
    # unbalanced labels: 300 of class 0, 60 of class 1, 40 of class 2 (N = 400, 3 classes)
    y = np.array([0] * 300 + [1] * 60 + [2] * 40)
    idx = balanced_subset(y, 0.10, seed=0)  # round(0.1 * 400 / 3) = 13 per class
    assert np.bincount(y[idx]).tolist() == [13, 13, 13]
    assert len(set(idx.tolist())) == len(idx)
    idx = balanced_subset(y, 0.25, seed=0)  # 33 per class, all 40 of class 2 suffice
    assert np.bincount(y[idx]).tolist() == [33, 33, 33]
    idx = balanced_subset(y, 0.5, seed=0)  # 67 per class: class 1 and 2 give all they have
    assert np.bincount(y[idx]).tolist() == [67, 60, 40]
    assert np.bincount(y[balanced_subset(y, 0.001, seed=0)]).tolist() == [1, 1, 1]
    assert np.array_equal(balanced_subset(y, 1.0, seed=3), np.arange(400))
    # seeds draw different subsets; one seed draws the same subset every time
    assert not np.array_equal(balanced_subset(y, 0.1, 0), balanced_subset(y, 0.1, 1))
    assert np.array_equal(balanced_subset(y, 0.1, 2), balanced_subset(y, 0.1, 2))
    with pytest.raises(ValueError, match="fraction"):
        balanced_subset(y, 0.0, seed=0)


def test_fewshot_curve_on_separable_blobs():
    x, y = _blobs(100)
    qx, qy = _blobs(50, seed=1)
    out = fewshot_curve(x, y, qx, qy, fractions=(0.01, 0.1, 1.0), seeds=(0, 1, 2))
    assert out["fractions"] == [0.01, 0.1, 1.0] and out["seeds"] == [0, 1, 2]
    for probe in ("linear", "nb"):
        rows = out[probe]
        assert [r["n_labels"] for r in rows] == [4, 40, 400]
        assert [len(r["runs"]) for r in rows] == [3, 3, 1]
        for r in rows:
            assert r["mean"] == pytest.approx(np.mean(r["runs"]))
            assert r["std"] == pytest.approx(np.std(r["runs"]))
        # separable blobs: one label per class already suffices
        assert all(r["mean"] > 0.95 for r in rows)
    assert out["linear"][-1]["std"] == 0.0


def test_fewshot_curve_has_variance_and_is_near_chance_on_shuffled_labels():
    x, y = _blobs(100, dim=32)
    qx, qy = _blobs(50, dim=32, seed=1)
    # noise as large as the class separation: a task where 5 labels per class are not enough
    x = x + np.random.default_rng(4).normal(size=x.shape).astype(np.float32) * 15
    qx = qx + np.random.default_rng(5).normal(size=qx.shape).astype(np.float32) * 15
    out = fewshot_curve(x, y, qx, qy, fractions=(0.05, 1.0), seeds=(0, 1, 2), probes=("nb",))
    assert out["nb"][0]["std"] > 0  # different subsets, different scores
    assert out["nb"][0]["mean"] < out["nb"][1]["mean"]  # more labels help
    shuffled = np.random.default_rng(0).permutation(y)
    out = fewshot_curve(x, shuffled, qx, qy, fractions=(0.25, 1.0), seeds=(0, 1, 2))
    assert all(r["mean"] < 0.45 for p in ("linear", "nb") for r in out[p])  # chance: 0.25
    with pytest.raises(ValueError, match="valid: linear, nb"):
        fewshot_curve(x, y, qx, qy, probes=("svm",))
