"""G-SimCLR's guided batches: pseudo-labels from a denoising autoencoder, and the sampler."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch.distributed as dist
from sklearn.metrics import adjusted_rand_score

from selfsup.data import load_source
from selfsup.data.guided import GuidedBatchSampler, pseudo_labels


def balanced_labels(n: int, clusters: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.arange(n) % clusters)


@pytest.mark.parametrize(("n", "clusters", "batch"), [(240, 24, 8), (240, 40, 24), (97, 13, 13)])
def test_no_cluster_twice_in_a_batch_and_every_index_once(n, clusters, batch):
    labels = balanced_labels(n, clusters)
    sampler = GuidedBatchSampler(labels, batch, seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == n // batch
        for b in batches:
            assert len(b) == batch
            assert len(set(labels[b])) == batch, "two images of one cluster share a batch"
        seen = np.concatenate(batches)
        assert len(set(seen)) == len(seen)  # no index twice
        if n % batch == 0:
            assert sorted(seen) == list(range(n))  # ... and every index once


def test_epochs_differ_and_an_epoch_is_reproducible():
    sampler = GuidedBatchSampler(balanced_labels(120, 30), 10, seed=0)
    sampler.set_epoch(0)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_an_oversized_cluster_is_subsampled_never_co_batched():
    # cluster 0 holds 60 of 200 images: more than the 20 batches of 10, so it cannot fit
    labels = np.concatenate([np.zeros(60, dtype=np.int64), 1 + np.arange(140) % 20])
    sampler = GuidedBatchSampler(labels, 10, seed=0)
    batches = list(sampler)
    assert batches and all(len(set(labels[b])) == len(b) == 10 for b in batches)
    zeros = [i for b in batches for i in b if labels[i] == 0]
    assert len(zeros) <= len(batches)
    sampler.set_epoch(1)
    later = {i for b in sampler for i in b if labels[i] == 0}
    assert later != set(zeros)  # a different subset of the big cluster next epoch


def test_fewer_clusters_than_the_batch_is_an_error():
    with pytest.raises(ValueError, match="at least as many pseudo-classes"):
        GuidedBatchSampler(balanced_labels(100, 8), 10)


def test_resume_skips_the_batches_already_trained():
    sampler = GuidedBatchSampler(balanced_labels(120, 30), 10, seed=0)
    full = list(sampler)
    sampler.skip = (0, 4)
    assert list(sampler) == full[4:]
    assert list(sampler) == full  # the skip applies once


@contextlib.contextmanager
def one_rank_group(store):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_one_rank_group_gives_the_plain_batches(tmp_path):
    sampler = GuidedBatchSampler(balanced_labels(120, 30), 10, seed=3)
    plain = list(sampler)
    with one_rank_group(tmp_path / "store"):
        assert list(sampler) == plain


def test_pseudo_labels_follow_the_classes_and_repeat_with_the_seed():
    split = load_source("digits").train
    labels = pseudo_labels(split, clusters=10, seed=0)
    assert labels.shape == (len(split),) and set(labels) == set(range(10))
    # unsupervised clusters of an autoencoder's codes agree with the digit classes far above
    # chance (ARI 0, std ~0.002 here); this is what makes the batches "guided"
    assert adjusted_rand_score(split.labels, labels) > 0.1
    few = pseudo_labels(split, clusters=10, steps=3, seed=1)
    assert np.array_equal(pseudo_labels(split, clusters=10, steps=3, seed=1), few)


def test_pseudo_labels_reject_more_clusters_than_images():
    split = load_source("digits").train
    with pytest.raises(ValueError, match="clusters"):
        pseudo_labels(split, clusters=len(split) + 1, steps=0)
