import math

import pytest
import torch

from selfsup.collapse import CollapseCheck, embedding_std, rankme


def _slow_embedding_std(z):
    rows = []
    for v in z.tolist():
        norm = math.sqrt(sum(a * a for a in v))
        rows.append([a / norm for a in v])
    n, d = len(rows), len(rows[0])
    stds = []
    for j in range(d):
        col = [r[j] for r in rows]
        mu = sum(col) / n
        stds.append(math.sqrt(sum((c - mu) ** 2 for c in col) / (n - 1)))
    return sum(stds) / d


def test_embedding_std_matches_literal_reference_and_hand_value():
    z = torch.randn(40, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert embedding_std(z) == pytest.approx(_slow_embedding_std(z), abs=1e-12)
    # two unit vectors (1, 0) and (0, 1): each column holds {1, 0}, std sqrt(1/2) (n - 1 = 1)
    assert embedding_std(torch.eye(2)) == pytest.approx(math.sqrt(0.5))
    assert embedding_std(torch.ones(30, 5)) == 0.0  # every input on one point


def test_collapse_check_thresholds():
    check = CollapseCheck()
    dim = 512  # rank floor max(2, 0.01 x 512) = 5.12; std floor 0.01 / sqrt(512)
    assert check.reasons(rank=100.0, std=0.5 / math.sqrt(dim), dim=dim) == []
    [reason] = check.reasons(rank=4.0, std=0.5 / math.sqrt(dim), dim=dim)
    assert "RankMe" in reason and "5.12" in reason
    [reason] = check.reasons(rank=100.0, std=1e-6, dim=dim)
    assert "std" in reason
    assert len(check.reasons(rank=1.0, std=0.0, dim=dim)) == 2
    # a constant representation is caught by both rules
    z = torch.ones(64, 16) + 1e-9 * torch.randn(64, 16)
    assert len(check.reasons(rankme(z), embedding_std(z), 16)) == 2


def test_rank_floor_is_capped_by_the_input_dims():
    check = CollapseCheck()
    # T-JEPA's flattened tokens of a 30-feature row: 31 x 64 = 1,984 dims, RankMe ~15 on a good
    # run. 1% of 1,984 (19.84) called that collapsed; 1% of min(1984, 30) floors at min_rank 2.
    std = 0.5 / math.sqrt(1984)
    [reason] = check.reasons(rank=15.0, std=std, dim=1984)
    assert "15.00 < 19.84 (0.01 of 1984 dims)" in reason
    assert check.reasons(rank=15.0, std=std, dim=1984, input_dim=30) == []
    assert check.rank_floor(1984, 30) == 2.0 and check.rank_floor(1984, 500) == 5.0
    [reason] = check.reasons(rank=1.2, std=std, dim=1984, input_dim=30)  # a constant map
    assert "1.20 < 2.00 (0.01 of min(1984 dims, 30 input values))" in reason
    # an image encoder (input wider than the embedding) keeps 1% of its dims
    assert check.rank_floor(512, 3 * 32 * 32) == pytest.approx(5.12)


def test_input_dims_of_the_preprocessings():
    from selfsup.backbones import Preprocessing, TablePreprocessing

    assert Preprocessing(32, 3, (0.5,) * 3, (0.2,) * 3).input_dim == 3 * 32 * 32
    # 2 numeric columns (one with a missing indicator) and categories of 3 and 1 values:
    # 2 + 1 + (3 + 1) + (1 + 1), the width of one_hot
    table = TablePreprocessing(("a", "b", "c", "d"),
                               ("numeric", "numeric", "categorical", "categorical"),
                               (0.0, 0.0), (1.0, 1.0), (True, False), (("x", "y", "z"), ("w",)))
    assert table.input_dim == 9
    rows = torch.tensor([[0.0, 1.0, 2.0, 0.0]])
    assert table.one_hot(rows).shape == (1, table.input_dim)
