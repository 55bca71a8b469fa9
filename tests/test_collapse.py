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
