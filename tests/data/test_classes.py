"""Selecting classes of a labelled source: the stages of a continual stream."""

import numpy as np
import pytest
import torch

from selfsup.data import DataError, DataSource
from selfsup.data.classes import parse_classes, select_classes
from selfsup.data.split import in_memory_split


def source_of(labels_train, labels_test) -> DataSource:
    def split(labels):
        labels = np.asarray(labels, dtype=np.int64)
        images = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1)
        return in_memory_split(images, labels)

    return DataSource("toy", split(labels_train), split(labels_test), 1, 1, None)


def test_parse_ranges_and_lists():
    assert parse_classes("0-4") == [0, 1, 2, 3, 4]
    assert parse_classes("7, 1,3-4") == [1, 3, 4, 7]
    for bad in ("a", "1-", "4-2", ""):
        with pytest.raises(DataError):
            parse_classes(bad)


def test_both_splits_keep_only_those_labels_in_order():
    src = source_of([0, 5, 1, 6, 2, 9, 3, 7, 4, 8], [9, 0, 5])
    low = select_classes(src, "0-4")
    assert low.train.labels.tolist() == [0, 1, 2, 3, 4]
    assert low.train.images.flatten().tolist() == [0, 2, 4, 6, 8]  # images travel with labels
    assert low.test.labels.tolist() == [0]
    high = select_classes(src, "5-9")
    assert high.train.labels.tolist() == [5, 6, 9, 7, 8] and high.test.labels.tolist() == [9, 5]


def test_missing_class_is_named():
    with pytest.raises(DataError, match=r"no class\(es\) \[3\]"):
        select_classes(source_of([0, 1, 2], [0]), "2-3")
