"""MutualNeighbours against brute-force mutual k-NN, and the transitive method built on it."""

from __future__ import annotations

import pytest
import torch

from selfsup.data.batch import Batch
from selfsup.data.spec import DataSpec
from selfsup.methods.neighbours import MutualNeighbours


def brute_force(emb: torch.Tensor, k: int) -> tuple[list[set[int]], set[tuple[int, int]]]:
    """k nearest neighbours of each row by cosine similarity (itself excluded), one pair at a
    time, and the mutual pairs (i, j): j among i's and i among j's."""
    n = emb.shape[0]
    knn = []
    for i in range(n):
        sims = []
        for j in range(n):
            if j != i:
                cos = float(emb[i] @ emb[j] / (emb[i].norm() * emb[j].norm()))
                sims.append((cos, j))
        sims.sort(reverse=True)
        knn.append({j for _, j in sims[:k]})
    mutual = {(i, j) for i in range(n) for j in knn[i] if i in knn[j]}
    return knn, mutual


def filled_table(n: int = 24, dim: int = 5, k: int = 3, chunk: int = 7, seed: int = 0
                 ) -> tuple[MutualNeighbours, torch.Tensor]:
    emb = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    table = MutualNeighbours(n, dim, k=k, chunk=chunk)  # chunk < n: several chunks
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    table.update(emb[order], order)  # sample i's embedding is emb[i], written in random order
    return table, emb


def table_pairs(table: MutualNeighbours) -> tuple[list[set[int]], set[tuple[int, int]]]:
    knn = [{int(j) for j in row if j >= 0} for row in table.knn]
    mutual = {(i, int(j)) for i in range(len(table.knn))
              for j, m in zip(table.knn[i], table.mutual[i], strict=True) if m}
    return knn, mutual


def test_refresh_matches_brute_force_mutual_knn():
    table, emb = filled_table()
    assert int(table.refreshes) == 1  # one epoch's worth of samples written: refreshed once
    want_knn, want_mutual = brute_force(emb, 3)
    got_knn, got_mutual = table_pairs(table)
    assert got_knn == want_knn
    assert got_mutual == want_mutual
    assert want_mutual and len(want_mutual) < 24 * 3  # some pairs are mutual, some one-sided
    assert all((j, i) in got_mutual for i, j in got_mutual)  # mutual is symmetric


def test_refresh_only_uses_filled_rows():
    n, dim = 30, 4
    emb = torch.randn(n, dim, generator=torch.Generator().manual_seed(3))
    table = MutualNeighbours(n, dim, k=2, refresh_epochs=10.0)  # no automatic refresh
    written = torch.tensor([0, 3, 4, 9, 11, 17, 20, 28])
    table.update(emb[written], written)
    assert int(table.refreshes) == 0 and (table.knn == -1).all()
    table.refresh()
    knn, mutual = brute_force(emb[written], 2)
    got_knn, got_mutual = table_pairs(table)
    for pos, i in enumerate(written.tolist()):
        assert got_knn[i] == {int(written[j]) for j in knn[pos]}
    assert got_mutual == {(int(written[a]), int(written[b])) for a, b in mutual}
    unwritten = torch.ones(n, dtype=torch.bool)
    unwritten[written] = False
    assert (table.knn[unwritten] == -1).all() and not table.mutual[unwritten].any()


def test_edges_match_the_table():
    table, _ = filled_table()
    _, mutual_pairs = table_pairs(table)
    knn, _ = table_pairs(table)
    rows = torch.tensor([5, 0, 17, 9])
    columns = torch.tensor([3, 5, 8, 0, 12, 17, 21, 9, 2, 14])
    mutual, one_sided = table.edges(rows, columns)
    assert mutual.shape == one_sided.shape == (4, 10)
    for a, i in enumerate(rows.tolist()):
        for c, j in enumerate(columns.tolist()):
            assert bool(mutual[a, c]) == ((i, j) in mutual_pairs)
            assert bool(one_sided[a, c]) == (j in knn[i] and (i, j) not in mutual_pairs)
    assert mutual.any() and not (mutual & one_sided).any()


def test_no_edges_before_the_first_refresh():
    table = MutualNeighbours(10, 3, k=2)
    mutual, one_sided = table.edges(torch.arange(4), torch.arange(10))
    assert not mutual.any() and not one_sided.any()
    assert torch.isnan(table.purity)


def test_refresh_cadence_counts_samples_and_keeps_the_overshoot():
    n, dim = 20, 3
    table = MutualNeighbours(n, dim, k=2, refresh_epochs=0.5)  # every 10 samples
    gen = torch.Generator().manual_seed(4)
    refreshed_at = []
    for step in range(10):  # 4 samples a step: 40 samples, 4 refreshes of 10
        idx = torch.arange(4 * step, 4 * step + 4) % n
        table.update(torch.randn(4, dim, generator=gen), idx)
        if len(refreshed_at) < int(table.refreshes):
            refreshed_at.append(step)
    # at 12, 20, 32 and 40 samples seen: every 10 on average, not every 3 steps
    assert refreshed_at == [2, 4, 7, 9]


def test_purity_is_the_label_agreement_of_mutual_pairs():
    table, emb = filled_table()
    labels = torch.arange(24) % 3
    table.update(emb, torch.arange(24), labels)  # a second epoch, now with labels
    _, mutual = brute_force(emb, 3)
    want = sum(int(labels[i] == labels[j]) for i, j in mutual) / len(mutual)
    assert float(table.purity) == pytest.approx(want)
    table.update(emb, torch.arange(24), torch.zeros(24, dtype=torch.long))
    assert float(table.purity) == 1.0


def test_state_travels_in_the_state_dict():
    table, _ = filled_table()
    state = table.state_dict()
    for key in ("bank", "filled", "knn", "mutual", "labels", "seen", "refreshes", "purity"):
        assert key in state
    fresh = MutualNeighbours(24, 5, k=3, chunk=7)
    fresh.load_state_dict(state)
    rows, columns = torch.arange(6), torch.arange(24)
    for got, want in zip(fresh.edges(rows, columns), table.edges(rows, columns), strict=True):
        assert torch.equal(got, want)


def test_bad_settings():
    with pytest.raises(ValueError, match="k >= 1"):
        MutualNeighbours(10, 3, k=0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        MutualNeighbours(1, 3)
    with pytest.raises(ValueError, match="refresh_epochs"):
        MutualNeighbours(10, 3, refresh_epochs=0)
    assert MutualNeighbours(4, 3, k=10).k == 3  # at most every other sample


class Flat(torch.nn.Module):
    """A stand-in backbone: flattened pixels through one linear layer."""

    def __init__(self, pixels: int, dim: int = 16):
        super().__init__()
        self.dim = dim
        self.linear = torch.nn.Linear(pixels, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def test_transitive_mines_pairs_after_an_epoch_and_reports_purity():
    from selfsup.methods.transitive import Transitive

    torch.manual_seed(0)
    n = 16
    # two tight clusters of images, labelled by cluster
    base = torch.tensor([40, 215]).repeat_interleave(n // 2)[:, None, None, None]
    inputs = (base + torch.randint(-8, 9, (n, 1, 4, 4))).to(torch.uint8)
    labels = torch.arange(n) // (n // 2)
    method = Transitive(Flat(16), lambda x: (x.float() / 255, x.float() / 255),
                        DataSpec("image", (1, 4, 4), n, 2), neighbours=3)
    batch = Batch(inputs, labels, torch.arange(n))
    first = method.training_loss(batch)
    # edges are read before this batch is written: none yet; the bank then holds the whole set
    # and refreshes, so the table's purity is already known
    assert first["transitive_pairs"] == 0 and "batch_pair_purity" not in first
    assert int(method.neighbours.refreshes) == 1 and "neighbour_purity" in first
    second = method.training_loss(batch)
    assert second["transitive_pairs"] > 0
    # identical images: every neighbour is from the same cluster
    assert float(second["batch_pair_purity"]) == 1.0
    assert float(second["neighbour_purity"]) == 1.0
    second["loss"].backward()
    assert method.projector[0].weight.grad is not None
