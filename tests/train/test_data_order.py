"""The data order: one global batch whatever the number of ranks, resumable mid-epoch."""

import random

import numpy as np
import torch

from selfsup.train import data_order
from selfsup.train.data_order import ShardedShuffle, rng_state, set_rng_state


def batches(sampler: ShardedShuffle, world: int, rank: int, monkeypatch) -> list[list[int]]:
    monkeypatch.setattr(data_order, "world_and_rank", lambda: (world, rank))
    order = list(sampler)
    b = sampler.per_rank_batch
    return [order[i:i + b] for i in range(0, len(order), b)]


def test_ranks_split_each_global_batch(monkeypatch):
    single = batches(ShardedShuffle(103, 8, seed=3), 1, 0, monkeypatch)  # 12 steps of 8
    halves = [batches(ShardedShuffle(103, 4, seed=3), 2, r, monkeypatch) for r in (0, 1)]
    assert len(single) == len(halves[0]) == len(halves[1]) == 12
    assert len(ShardedShuffle(103, 4)) == 48  # per rank: 12 batches of 4
    for step, full in enumerate(single):
        # rank 0 holds the first half of the single-process batch, rank 1 the second
        assert halves[0][step] + halves[1][step] == full
    seen = [i for h in halves for batch in h for i in batch]
    assert len(seen) == len(set(seen)) == 96  # disjoint; the 7 left over are dropped


def test_epochs_reshuffle_and_seed_decides(monkeypatch):
    s = ShardedShuffle(50, 5, seed=0)
    first = batches(s, 1, 0, monkeypatch)
    assert batches(s, 1, 0, monkeypatch) == first  # same epoch, same order
    s.set_epoch(1)
    assert batches(s, 1, 0, monkeypatch) != first
    assert sorted(sum(first, [])) == list(range(50))
    assert batches(ShardedShuffle(50, 5, seed=1), 1, 0, monkeypatch) != first


def test_skip_resumes_mid_epoch_once(monkeypatch):
    s = ShardedShuffle(40, 4, seed=0)
    s.set_epoch(2)
    full = batches(s, 1, 0, monkeypatch)
    s.skip = (2, 3)
    assert batches(s, 1, 0, monkeypatch) == full[3:]
    assert batches(s, 1, 0, monkeypatch) == full  # the next pass is a whole epoch again
    s.skip = (1, 3)  # a skip for another epoch does not apply
    assert batches(s, 1, 0, monkeypatch) == full


def test_rng_state_round_trip():
    state = rng_state()
    a = (torch.rand(3), random.random(), np.random.rand())
    set_rng_state(state)
    b = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]
