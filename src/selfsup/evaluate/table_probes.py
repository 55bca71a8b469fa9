"""Probes for table encoders (issue 16, T-JEPA's downstream protocol): the same small MLP on
the frozen embeddings and on the raw features, and gradient-boosted trees on the raw features,
the reference any tabular representation has to meet. Accuracy for a classification target,
RMSE (and R^2) for a regression one, at 100% and 10% of the training labels.

No choice sees the test split: each labelled training subset is cut into a fit part and a
validation part (`validation_split`); the MLP stops on the validation loss and keeps its best
epoch; the trees take the grid point and the number of trees with the lowest validation loss,
then are refitted on the whole subset. A 10% subset is class-balanced (`balanced_subset`) for
classification and uniform for regression, one per seed; the 100% point is the whole set,
fitted once (the first seed), as in the few-shot curves.
"""

from __future__ import annotations

import copy
import time
import warnings
from typing import Any

import numpy as np
from scipy.linalg import LinAlgWarning
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..data import Split
from .features import raw_table_features
from .fewshot import balanced_subset
from .probes import PROBE_BLAS_THREADS

TABLE_PROBES = ("mlp", "raw_mlp", "gbt")
PROBE_NAMES = {"mlp": "MLP on embeddings", "raw_mlp": "MLP on raw features",
               "gbt": "GBDT on raw features"}
TASKS = ("classification", "regression")
FRACTIONS = (1.0, 0.1)
SEEDS = (0, 1, 2)
VAL_FRACTION = 0.2  # of each labelled subset, per class for classification
MIN_VAL = 2  # rows below which a subset keeps no validation part (fixed budgets instead)
# The MLP: one hidden layer, Adam at its default rate, batches of 256, at most 100 epochs,
# stopped 5 epochs after the last improvement of the validation loss. One layer of 256 keeps
# a fit on satimage's 2,368-d embeddings near 20 s on one core; it is the same on raw features.
MLP_HIDDEN = (256,)
MLP_BATCH = 256
MLP_MAX_EPOCHS = 100
MLP_PATIENCE = 5
MLP_FIXED_EPOCHS = 100  # a subset too small to hold out a validation part
# The trees: scikit-learn's histogram GBDT, native categorical splits, learning rate 0.1;
# leaves per tree from GBT_GRID, trees added 10 at a time up to 500, stopped 3 checks (30
# trees) after the validation loss last improved. At least 20 rows per leaf (scikit-learn's
# default), fewer for a small subset (5% of its rows, at least 2): 15 labels of wine could not
# split at all.
GBT_GRID = (15, 31, 63)  # max_leaf_nodes
GBT_STEP, GBT_MAX_TREES, GBT_PATIENCE = 10, 500, 3
GBT_DEFAULT = (31, 100)  # (leaves, trees) without a validation part
GBT_MIN_LEAF = 20
GBT_MAX_CATEGORIES = 255  # scikit-learn's bins per feature, categories included
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


def check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")


def label_subset(y: np.ndarray, fraction: float, seed: int, task: str) -> np.ndarray:
    """Indices of a labelled subset: class-balanced for classification (`balanced_subset`),
    uniform for regression (round(fraction x N) rows, at least 2), sorted."""
    check_task(task)
    if task == "classification" or fraction == 1:
        return balanced_subset(y, fraction, seed)
    n = min(len(y), max(2, round(fraction * len(y))))
    return np.sort(np.random.default_rng(seed).permutation(len(y))[:n])


def validation_split(y: np.ndarray, seed: int, task: str, fraction: float = VAL_FRACTION
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) indices of a labelled subset. Classification: ``fraction`` of each
    class (at least one row, never its last one; a class of one row stays in the fit part),
    so every class is fitted. Regression: ``fraction`` of the rows. The validation part is
    empty below `MIN_VAL` rows."""
    rng = np.random.default_rng(seed)
    if task == "classification":
        held = []
        for c in np.unique(y):
            rows = rng.permutation(np.flatnonzero(y == c))
            if len(rows) >= 2:
                held.append(rows[:min(len(rows) - 1, max(1, round(fraction * len(rows))))])
        val = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    else:
        val = np.sort(rng.permutation(len(y))[:round(fraction * len(y))])
    if len(val) < MIN_VAL:
        val = np.empty(0, dtype=np.int64)
    return np.setdiff1d(np.arange(len(y)), val), val


def scores(task: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Accuracy, or RMSE and R^2 = 1 - SSE / SST (SST around the test targets' mean)."""
    if task == "classification":
        return {"top1": float(np.mean(pred == y))}
    err = float(np.sum((pred - y) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    return {"rmse": float(np.sqrt(err / len(y))), "r2": 1.0 - err / total if total else 0.0}


def _val_loss(model, task: str, x: np.ndarray, y: np.ndarray) -> float:
    if task == "classification":
        return float(log_loss(y, model.predict_proba(x), labels=model.classes_))
    return float(np.mean((model.predict(x) - y) ** 2))


def fit_mlp(x: np.ndarray, y: np.ndarray, task: str, seed: int):
    """The MLP on standardized inputs (and, for regression, a standardized target), one
    ``partial_fit`` epoch at a time, keeping the epoch of the lowest validation loss. Returns
    a predict function (N, D) -> (N,) and a record of the fit."""
    check_task(task)
    fit, val = validation_split(y, seed, task)
    scaler = StandardScaler().fit(x[fit])
    xs = scaler.transform(x).astype(np.float32)
    mu, sd = (float(y[fit].mean()), float(y[fit].std()) or 1.0) if task == "regression" \
        else (0.0, 1.0)
    target = y if task == "classification" else (y - mu) / sd
    kind = MLPClassifier if task == "classification" else MLPRegressor
    model = kind(hidden_layer_sizes=MLP_HIDDEN, batch_size=min(MLP_BATCH, len(fit)),
                 random_state=seed)
    extra = {"classes": np.unique(y)} if task == "classification" else {}
    best, best_loss, best_epoch, epoch = None, np.inf, 0, 0
    with threadpool_limits(PROBE_BLAS_THREADS):
        for epoch in range(1, (MLP_MAX_EPOCHS if len(val) else MLP_FIXED_EPOCHS) + 1):
            model.partial_fit(xs[fit], target[fit], **extra)
            if not len(val):
                continue
            loss = _val_loss(model, task, xs[val], target[val])
            if loss < best_loss - 1e-4:
                best, best_loss, best_epoch = copy.deepcopy(model), loss, epoch
            elif epoch - best_epoch >= MLP_PATIENCE:
                break
    model = best or model

    def predict(q: np.ndarray) -> np.ndarray:
        with threadpool_limits(PROBE_BLAS_THREADS):
            p = model.predict(scaler.transform(q).astype(np.float32))
        return p if task == "classification" else p * sd + mu

    return predict, {"epochs": best_epoch or epoch, "n_fit": int(len(fit)),
                     "n_val": int(len(val))}


def fit_gbt(x: np.ndarray, y: np.ndarray, task: str, categorical: np.ndarray, seed: int):
    """Gradient-boosted trees on raw rows (NaN missing; ``categorical`` (F,) bool marks
    category codes). Per grid point, one fit on the fit part grows trees while scikit-learn's
    own early stopping watches the loss on our validation part (``X_val``), stopping once
    `GBT_PATIENCE` x `GBT_STEP` trees bring no gain; the (leaves, trees) of the lowest
    validation loss, trees counted in steps of `GBT_STEP`, are refitted on the whole subset.
    Returns a predict function and a record."""
    check_task(task)
    kind = HistGradientBoostingClassifier if task == "classification" else \
        HistGradientBoostingRegressor
    cats = categorical if categorical.any() else None

    fit, val = validation_split(y, seed, task)
    min_leaf = min(GBT_MIN_LEAF, max(2, len(fit) // 20))

    def model(leaves: int, trees: int, watch: bool = False):
        return kind(learning_rate=0.1, max_leaf_nodes=leaves, max_iter=trees,
                    min_samples_leaf=min_leaf, categorical_features=cats,
                    early_stopping=watch, scoring="loss",
                    n_iter_no_change=GBT_PATIENCE * GBT_STEP, tol=1e-6, random_state=seed)

    # scikit-learn's losses: log loss, and half the squared error (doubled here to the MSE)
    scale = 1.0 if task == "classification" else 2.0
    chosen, losses = GBT_DEFAULT, {}
    with threadpool_limits(PROBE_BLAS_THREADS):
        if len(val):
            for leaves in GBT_GRID:
                m = model(leaves, GBT_MAX_TREES, watch=True).fit(x[fit], y[fit], X_val=x[val],
                                                                  y_val=y[val])
                # validation_score_[t]: minus the loss with t trees (t = 0: none yet)
                trees = np.arange(GBT_STEP, len(m.validation_score_), GBT_STEP)
                t = int(trees[np.argmax(m.validation_score_[trees])])
                losses[leaves] = (-scale * float(m.validation_score_[t]), t)
            leaves = min(GBT_GRID, key=lambda k: losses[k][0])
            chosen = (leaves, losses[leaves][1])
        final = model(*chosen).fit(x, y)

    def predict(q: np.ndarray) -> np.ndarray:
        with threadpool_limits(PROBE_BLAS_THREADS):
            return final.predict(q)

    return predict, {"leaves": chosen[0], "trees": chosen[1], "min_leaf": min_leaf,
                     "n_fit": int(len(fit)),
                     "n_val": int(len(val)),
                     "val_loss_by_leaves": {str(k): v[0] for k, v in losses.items()}}


def table_probes(probes: list[str] | tuple[str, ...], task: str, train_y: np.ndarray,
                 test_y: np.ndarray, inputs: dict[str, tuple[np.ndarray, np.ndarray]],
                 categorical: np.ndarray, fractions: tuple[float, ...] = FRACTIONS,
                 seeds: tuple[int, ...] = SEEDS) -> dict[str, Any]:
    """For each probe and label fraction: mean and std of the test score over ``seeds``.

    ``inputs[probe]`` is its (train, test) input: embeddings for ``mlp``, the raw-feature
    vectors (`TablePreprocessing.one_hot`) for ``raw_mlp``, the raw rows (codes for categories,
    NaN missing) for ``gbt``, whose ``categorical`` (F,) marks the category columns. A
    subset's seed draws it and seeds the probe (initialization, validation part). The score is
    ``top1`` (classification) or ``rmse`` with ``r2`` beside it (regression)."""
    check_task(task)
    unknown = sorted(set(probes) - set(TABLE_PROBES))
    if unknown:
        raise ValueError(f"unknown table probe(s) {unknown}; valid: {', '.join(TABLE_PROBES)}")
    metric = "top1" if task == "classification" else "rmse"
    out: dict[str, Any] = {"task": task, "metric": metric, "fractions": list(fractions),
                           "seeds": list(seeds), "rows": {}, "fits": {}, "seconds": {}}
    for probe in probes:
        t0 = time.perf_counter()
        train_x, test_x = inputs[probe]
        rows, fits = [], []
        for f in fractions:
            runs, r2, sizes = [], [], []
            for seed in (seeds if f < 1 else seeds[:1]):
                idx = label_subset(train_y, f, seed, task)
                x, y = train_x[idx], train_y[idx]
                if probe == "gbt":
                    predict, record = fit_gbt(x, y, task, categorical, seed)
                else:
                    predict, record = fit_mlp(x, y, task, seed)
                s = scores(task, test_y, predict(test_x))
                runs.append(s[metric])
                r2.append(s.get("r2"))
                sizes.append(len(idx))
                fits.append({"fraction": f, "seed": seed, **record})
            row = {"fraction": f, "n_labels": int(sizes[0]), "mean": float(np.mean(runs)),
                   "std": float(np.std(runs)), "runs": [float(v) for v in runs]}
            if task == "regression":
                row |= {"r2_mean": float(np.mean(r2)), "r2_runs": [float(v) for v in r2]}
            rows.append(row)
        out["rows"][probe], out["fits"][probe] = rows, fits
        out["seconds"][probe] = round(time.perf_counter() - t0, 2)
    return out


def ridge_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                test_y: np.ndarray, alphas: tuple[float, ...] = RIDGE_ALPHAS, seed: int = 0
                ) -> dict[str, Any]:
    """The linear probe of a regression target: ridge regression on standardized features,
    its L2 strength chosen by validation RMSE on `VAL_FRACTION` of the training rows, then
    refitted on all of them. Returns ``{"rmse", "r2", "alpha", "val_rmse_by_alpha"}``."""
    fit, val = validation_split(train_y, seed, "regression")
    by_alpha: dict[str, float] = {}
    # wide embeddings of a few features are near-singular: a small alpha warns, and loses
    with threadpool_limits(PROBE_BLAS_THREADS), warnings.catch_warnings():
        warnings.simplefilter("ignore", LinAlgWarning)
        if len(val):
            scaler = StandardScaler().fit(train_x[fit])
            for a in alphas:
                m = Ridge(alpha=a).fit(scaler.transform(train_x[fit]), train_y[fit])
                pred = m.predict(scaler.transform(train_x[val]))
                by_alpha[str(a)] = scores("regression", train_y[val], pred)["rmse"]
        # ties go to the stronger regularization
        alpha = max(alphas, key=lambda a: (-by_alpha[str(a)], a)) if by_alpha else 1.0
        scaler = StandardScaler().fit(train_x)
        m = Ridge(alpha=alpha).fit(scaler.transform(train_x), train_y)
        result = scores("regression", test_y, m.predict(scaler.transform(test_x)))
    return {**result, "alpha": alpha, "val_rmse_by_alpha": by_alpha}



def categorical_mask(preprocessing) -> np.ndarray:
    """(F,) bool: the columns the trees split on as categories. A column of more categories
    than the trees' histogram bins stays an ordinal code."""
    sizes = iter(len(c) for c in preprocessing.categories)
    return np.array([k == "categorical" and next(sizes) <= GBT_MAX_CATEGORIES
                     for k in preprocessing.kinds])


def gbt_rows(split: Split, preprocessing) -> np.ndarray:
    """A split's raw rows (N, F) as the trees read them: numeric values with NaN missing,
    category codes with NaN for missing and unseen (-1)."""
    rows = split.images.numpy().astype(np.float64)
    codes = np.array([k == "categorical" for k in preprocessing.kinds])
    rows[:, codes] = np.where(rows[:, codes] < 0, np.nan, rows[:, codes])
    return rows


def probe_inputs(probes, embedded: tuple[np.ndarray, np.ndarray], train: Split, test: Split,
                 preprocessing) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each table probe's (train, test) inputs (see `table_probes`)."""
    inputs = {}
    if "mlp" in probes:
        inputs["mlp"] = embedded
    if "raw_mlp" in probes:
        inputs["raw_mlp"] = (raw_table_features(train, preprocessing)[0],
                             raw_table_features(test, preprocessing)[0])
    if "gbt" in probes:
        inputs["gbt"] = (gbt_rows(train, preprocessing), gbt_rows(test, preprocessing))
    return inputs


def format_score(row: dict[str, Any], task: str) -> str:
    """One row of `table_probes` as text: ``89.35% ± 1.72`` or ``3.981 ± 0.005 (R² 0.945)``."""
    if task == "classification":
        std = f" ± {100 * row['std']:.2f}" if len(row["runs"]) > 1 else ""
        return f"{100 * row['mean']:.2f}%{std}"
    std = f" ± {row['std']:.3f}" if len(row["runs"]) > 1 else ""
    return f"{row['mean']:.3f}{std} (R² {row['r2_mean']:.3f})"
