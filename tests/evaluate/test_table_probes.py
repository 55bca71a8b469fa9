"""The table probes: subsets, validation splits, scores by hand, the MLP, the trees with native
categories, the ridge probe, and that nothing is chosen on the test split."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from selfsup.backbones import TablePreprocessing
from selfsup.data.split import in_memory_split
from selfsup.evaluate.table_probes import (
    GBT_GRID,
    GBT_STEP,
    MIN_VAL,
    categorical_mask,
    fit_gbt,
    fit_mlp,
    format_score,
    gbt_rows,
    label_subset,
    ridge_probe,
    scores,
    table_probes,
    validation_split,
)


def test_scores_by_hand():
    assert scores("classification", np.array([0, 1, 1]), np.array([0, 1, 0])) == {
        "top1": pytest.approx(2 / 3)}
    # errors 0, 0, 2: SSE 4, RMSE sqrt(4/3); SST around the mean 2 is 2, so R^2 = 1 - 4/2
    s = scores("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert s["rmse"] == pytest.approx(math.sqrt(4 / 3)) and s["r2"] == pytest.approx(-1.0)


def test_label_subsets():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    idx = label_subset(y, 0.1, seed=0, task="classification")  # round(0.1 * 100 / 3) per class
    assert np.bincount(y[idx]).tolist() == [3, 3, 3]
    assert label_subset(y, 1.0, seed=0, task="classification").tolist() == list(range(100))
    values = np.linspace(0, 1, 50)
    idx = label_subset(values, 0.1, seed=1, task="regression")
    assert len(idx) == 5 and len(set(idx)) == 5 and list(idx) == sorted(idx)
    assert len(label_subset(values[:4], 0.1, seed=1, task="regression")) == 2  # at least 2
    with pytest.raises(ValueError, match="unknown task 'ranking'; valid: classification, "
                                         "regression"):
        label_subset(y, 0.1, 0, "ranking")


def test_validation_split_keeps_every_class_in_the_fit_part():
    y = np.repeat([0, 1, 2], [10, 5, 1])
    fit, val = validation_split(y, seed=0, task="classification")
    # 20% of 10 -> 2, of 5 -> 1, a class of one row keeps it
    assert np.bincount(y[val], minlength=3).tolist() == [2, 1, 0]
    assert sorted(np.concatenate([fit, val]).tolist()) == list(range(16))
    assert set(y[fit]) == {0, 1, 2}
    fit, val = validation_split(np.arange(20.0), seed=0, task="regression")
    assert (len(fit), len(val)) == (16, 4)
    # too few to hold out MIN_VAL rows: no validation part (fixed budgets instead)
    fit, val = validation_split(np.array([0, 0, 1]), seed=0, task="classification")
    assert len(val) == 0 < MIN_VAL and len(fit) == 3


def blobs(n: int, seed: int, flip: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian classes in 5-d, 4 std apart; ``flip`` of the labels redrawn at random
    (noisy training labels, on which more epochs or trees stop paying)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (rng.normal(size=(n, 5)) + 4 * np.eye(5)[y]).astype(np.float32)
    noisy = rng.random(n) < flip
    return x, np.where(noisy, rng.integers(0, 3, n), y)


def test_mlp_learns_and_stops_early():
    x, y = blobs(300, 0, flip=0.3)
    q, qy = blobs(200, 1)
    predict, record = fit_mlp(x, y, "classification", seed=0)
    assert np.mean(predict(q) == qy) > 0.95
    assert record["n_val"] == 60 and record["n_fit"] == 240 and 1 <= record["epochs"] < 100
    again, _ = fit_mlp(x, y, "classification", seed=0)
    assert np.array_equal(again(q), predict(q))  # the seed fixes it


def test_mlp_regression_on_the_target_scale():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = 1000.0 + 50.0 * x[:, 0] - 20.0 * x[:, 1]  # std ~54, far from the standardized scale
    predict, _ = fit_mlp(x[:300], y[:300], "regression", seed=0)
    s = scores("regression", y[300:], predict(x[300:]))
    assert s["rmse"] < 5.0 and s["r2"] > 0.99


def test_trees_split_on_native_categories_and_missing_values():
    rng = np.random.default_rng(0)
    code = rng.integers(0, 12, 600).astype(np.float64)  # a category code, no order in it
    noise = rng.normal(size=600)
    y = np.isin(code, [1, 4, 7, 10]).astype(np.int64)
    code[::10] = np.nan  # missing: the trees send it down one side
    y[::10] = 0
    x = np.stack([code, noise], axis=1)
    predict, record = fit_gbt(x[:400], y[:400], "classification", np.array([True, False]), 0)
    assert np.mean(predict(x[400:]) == y[400:]) > 0.97
    assert record["leaves"] in GBT_GRID and record["trees"] % GBT_STEP == 0
    assert record["n_fit"] == 320 and record["min_leaf"] == 16  # 5% of the fit part, < 20
    assert set(record["val_loss_by_leaves"]) == {str(k) for k in GBT_GRID}


def test_trees_without_a_validation_part_use_the_defaults():
    x = np.array([[0.0], [1.0], [2.0]])
    _, record = fit_gbt(x, np.array([0, 0, 1]), "classification", np.array([False]), 0)
    assert (record["leaves"], record["trees"], record["n_val"]) == (31, 100, 0)
    assert record["min_leaf"] == 2


def test_ridge_probe_on_a_linear_target():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + 7.0
    r = ridge_probe(x[:150], y[:150], x[150:], y[150:])
    assert r["rmse"] < 0.05 and r["r2"] > 0.999
    assert r["alpha"] == 0.1  # the weakest penalty wins on a noiseless linear target
    assert set(r["val_rmse_by_alpha"]) == {"0.1", "1.0", "10.0", "100.0", "1000.0"}


def test_raw_rows_and_categorical_mask_for_the_trees():
    pre = TablePreprocessing(("a", "c", "d"), ("numeric", "categorical", "categorical"),
                             (0.0,), (1.0,), (False,),
                             (("x", "y"), tuple(str(i) for i in range(300))))
    # a category column wider than the trees' 255 bins stays an ordinal code
    assert categorical_mask(pre).tolist() == [False, True, False]
    rows = torch.tensor([[1.5, 0.0, 3.0], [float("nan"), -1.0, float("nan")]])
    out = gbt_rows(in_memory_split(rows, None), pre)
    assert out[0].tolist() == [1.5, 0.0, 3.0]
    assert np.isnan(out[1]).all()  # missing stays NaN, an unseen category (-1) becomes NaN


def test_table_probes_rows_and_no_choice_sees_the_test_labels():
    x, y = blobs(200, 0, flip=0.3)
    q, qy = blobs(60, 1)
    inputs = {"mlp": (x, q), "gbt": (x.astype(np.float64), q.astype(np.float64))}
    mask = np.zeros(5, dtype=bool)
    out = table_probes(["mlp", "gbt"], "classification", y, qy, inputs, mask,
                       fractions=(1.0, 0.25), seeds=(0, 1))
    assert out["metric"] == "top1" and out["fractions"] == [1.0, 0.25]
    full, quarter = out["rows"]["mlp"]
    assert full["n_labels"] == 200 and len(full["runs"]) == 1 and full["std"] == 0.0
    assert quarter["n_labels"] == 3 * round(0.25 * 200 / 3) and len(quarter["runs"]) == 2
    assert quarter["mean"] == pytest.approx(np.mean(quarter["runs"]))
    assert full["mean"] > 0.9 and out["rows"]["gbt"][0]["mean"] > 0.9
    # the same fits (epochs, leaves, trees) whatever the test labels are
    shuffled = table_probes(["mlp", "gbt"], "classification", y, np.roll(qy, 7), inputs, mask,
                            fractions=(1.0, 0.25), seeds=(0, 1))
    assert shuffled["fits"] == out["fits"]
    assert shuffled["rows"]["mlp"][0]["mean"] != full["mean"]
    with pytest.raises(ValueError, match=r"unknown table probe\(s\) \['svm'\]; valid: mlp, "
                                         "raw_mlp, gbt"):
        table_probes(["svm"], "classification", y, qy, inputs, mask)


def test_format_score():
    row = {"mean": 0.8935, "std": 0.0172, "runs": [0.87, 0.9, 0.91]}
    assert format_score(row, "classification") == "89.35% ± 1.72"
    one = {"mean": 3.98142, "std": 0.0, "runs": [3.98142], "r2_mean": 0.94512}
    assert format_score(one, "regression") == "3.981 (R² 0.945)"
