import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from selfsup.data import (
    DataError,
    Split,
    collate_batched,
    collate_images,
    load_source,
    sample_split,
    stratified_holdout,
    stratified_sample,
)
from selfsup.data.split import in_memory_split


def labelled_split(counts=(50, 30, 20)) -> Split:
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
    images = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)
    return in_memory_split(images.contiguous(), labels)


def test_getitems_returns_a_collated_batch():
    split = labelled_split()
    images, labels = split.dataset.__getitems__([3, 60, 99])
    assert images.shape == (3, 1, 2, 2) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 1, 2]
    image, label = split.dataset[60]
    assert image.shape == (1, 2, 2) and label == 1


def test_dataloader_fetches_whole_batches():
    split = labelled_split()
    loader = DataLoader(split.dataset, batch_size=16, shuffle=True, collate_fn=split.collate_fn)
    images, labels = next(iter(loader))
    assert images.shape == (16, 1, 2, 2) and labels.shape == (16,)
    assert split.collate_fn is collate_batched
    pickle.dumps(collate_batched)  # workers need it


def test_unlabeled_items_carry_minus_one():
    split = in_memory_split(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), None)
    assert split.dataset[0][1] == -1
    assert split.dataset.__getitems__([0, 1])[1].tolist() == [-1, -1]


def test_collate_images_drops_failed_decodes():
    a, b = torch.zeros(3, 4, 4, dtype=torch.uint8), torch.ones(3, 4, 4, dtype=torch.uint8)
    images, labels = collate_images([(a, 2), None, (b, 5), None])
    assert images.shape == (2, 3, 4, 4) and images.dtype == torch.uint8
    assert labels.tolist() == [2, 5] and labels.dtype == torch.int64
    empty, no_labels = collate_images([None])
    assert len(empty) == 0 and len(no_labels) == 0


def test_holdout_keeps_class_proportions():
    train, test = stratified_holdout(labelled_split(), fraction=0.2, seed=0)
    assert np.bincount(test.labels).tolist() == [10, 6, 4]
    assert np.bincount(train.labels).tolist() == [40, 24, 16]
    held = set(test.images.flatten().tolist())
    assert held.isdisjoint(train.images.flatten().tolist())
    # Images travel with their labels.
    for image, label in zip(test.images, test.labels, strict=True):
        assert np.repeat(np.arange(3), (50, 30, 20))[int(image[0, 0, 0])] == label


def test_holdout_is_deterministic_by_seed():
    first = stratified_holdout(labelled_split(), seed=3)[1].images
    again = stratified_holdout(labelled_split(), seed=3)[1].images
    other = stratified_holdout(labelled_split(), seed=4)[1].images
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_holdout_needs_labels():
    split = in_memory_split(torch.zeros(10, 1, 2, 2, dtype=torch.uint8), None)
    with pytest.raises(DataError, match="no labels"):
        stratified_holdout(split)


def test_holdout_of_a_real_source():
    train, test = stratified_holdout(load_source("digits").train, fraction=0.2)
    assert len(train) + len(test) == 1797 and len(test) == 360


def test_sample_split_is_a_fixed_subset_in_order():
    split = labelled_split()
    sample = sample_split(split, 10, seed=0)
    values = sample.images[:, 0, 0, 0].tolist()  # each image's value is its index
    assert len(sample) == 10 and values == sorted(values) and len(set(values)) == 10
    assert sample.labels.tolist() == split.labels[values].tolist()
    assert sample_split(split, 10, seed=0).images.equal(sample.images)
    assert sample_split(split, 1000) is split


def test_stratified_sample_keeps_class_shares_to_within_one():
    split = labelled_split((50, 30, 17, 3))  # 100 images; shares of 7: 3.5, 2.1, 1.19, 0.21
    for n in (1, 7, 33, 99):
        sample = stratified_sample(split, n, seed=0)
        counts = np.bincount(sample.labels, minlength=4)
        assert counts.sum() == n
        assert np.all(np.abs(counts - np.array([50, 30, 17, 3]) * n / 100) < 1), (n, counts)
        values = sample.images[:, 0, 0, 0].tolist()  # each image's value is its index
        assert values == sorted(values) and sample.labels.tolist() == split.labels[values].tolist()


def test_stratified_sample_is_fixed_by_seed_and_whole_when_small():
    split = labelled_split()
    first = stratified_sample(split, 20, seed=1).images
    assert torch.equal(first, stratified_sample(split, 20, seed=1).images)
    assert not torch.equal(first, stratified_sample(split, 20, seed=2).images)
    assert stratified_sample(split, 100) is split and stratified_sample(split, 500) is split
    unlabelled = in_memory_split(split.images, None)
    assert len(stratified_sample(unlabelled, 10)) == 10  # uniform without classes
