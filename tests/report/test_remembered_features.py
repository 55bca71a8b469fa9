"""The report written right after an evaluation samples the evaluation's features instead of
embedding its 12,000 sampled images again, and draws the same neighbour grid."""

import numpy as np
import pytest

import selfsup
from selfsup.backbones.io import load_encoder
from selfsup.data import load_source
from selfsup.data.split import in_memory_split
from selfsup.evaluate.features import extract_features, remembered, remembering
from selfsup.evaluate.suite import train_test
from selfsup.report import page, plots


def test_whole_splits_are_remembered_only_inside_the_block(digits_run, monkeypatch):
    digits = load_source("digits")
    train, _, _ = train_test(digits)
    encoder = load_encoder(digits_run.dir)
    assert remembered(encoder, train) is None  # outside: nothing kept
    with remembering():
        first = extract_features(encoder, train)
        # another copy of the same weights, another load of the same split: the same arrays
        again = load_encoder(digits_run.dir)
        again.forward = lambda x: pytest.fail("embedded again")
        got = extract_features(again, train_test(load_source("digits"))[0])
        assert got[0] is first[0] and got[1] is first[1]
        assert remembered(again, train)[0] is first[0]
        # other weights are other features
        other = load_encoder(digits_run.dir)
        next(other.parameters()).data.add_(1.0)
        assert remembered(other, train) is None
        # a part of the split is not the split
        part = in_memory_split(train.images[:100], train.labels[:100])
        assert remembered(encoder, part) is None
    assert remembered(encoder, train) is None


def test_the_report_draws_the_same_grid_from_the_evaluations_features(digits_run, monkeypatch):
    grids = []
    monkeypatch.setattr(plots, "neighbour_grid",
                        lambda *args: grids.append([np.asarray(a) for a in args])
                        or plots.embedding_map(np.zeros((2, 2)), np.zeros(2, int), "PCA", None))
    page.embedding_figures(digits_run.dir, None, "pca")  # embeds its own sample
    with remembering():
        selfsup.evaluate(digits_run.dir, protocols=["knn"])
        monkeypatch.setattr(page, "extract_features",
                            lambda *a, **k: pytest.fail("the report embedded its sample"))
        page.embedding_figures(digits_run.dir, None, "pca")
    (queries, query_labels, neighbours, labels), remembered_grid = grids
    assert queries.shape[0] == page.QUERIES and neighbours.shape[:2] == (page.QUERIES,
                                                                         page.NEIGHBOURS)
    for a, b in zip((queries, query_labels, neighbours, labels), remembered_grid, strict=True):
        np.testing.assert_array_equal(a, b)
