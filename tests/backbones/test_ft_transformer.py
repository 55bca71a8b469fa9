"""The FT-Transformer table backbone: tokenizer, token path, pools, save/load."""

from __future__ import annotations

import pytest
import torch

from selfsup.backbones import TablePreprocessing, build_table_backbone
from selfsup.backbones.io import load_encoder, save_encoder


@pytest.fixture
def pre() -> TablePreprocessing:
    # 2 numeric columns (the first with a missing indicator) and 2 categorical ones
    return TablePreprocessing(("a", "b", "c", "d"), ("numeric", "categorical", "numeric",
                                                     "categorical"),
                              mean=(0.0, 1.0), std=(1.0, 2.0), indicators=(True, False),
                              categories=(("x", "y"), ("p", "q", "r")), target="label")


def raw_rows(n: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(n, 4, generator=g)
    rows[:, 1] = torch.randint(0, 2, (n,), generator=g).float()
    rows[:, 3] = torch.randint(0, 3, (n,), generator=g).float()
    rows[0, 0] = float("nan")
    return rows


def test_tokenizer_is_an_affine_map_per_numeric_feature_and_an_embedding_per_value(pre):
    torch.manual_seed(0)
    model = build_table_backbone("ft_transformer", pre, dim=8, depth=1, heads=2)
    tok = model.tokenizer
    x = pre(raw_rows())  # (5, T = 2 numeric + 1 indicator + 2 categorical)
    assert model.num_features == 5 and x.shape == (5, 5)
    t = tok(x)  # (5, 5, 8)
    for j in range(3):
        assert torch.allclose(t[:, j], x[:, j, None] * tok.weight[j] + tok.bias[j])
    offsets = (0, 3)  # column c has 2 categories + missing, d starts after them
    for j, off in enumerate(offsets):
        idx = x[:, 3 + j].long() + off
        assert torch.allclose(t[:, 3 + j], tok.embed.weight[idx] + tok.bias[3 + j])


@pytest.mark.parametrize("pool, dim", [("flatten", (2 + 5) * 8), ("mean", 8), ("reg", 8)])
def test_pools_and_token_path(pre, pool, dim):
    model = build_table_backbone("ft_transformer", pre, dim=8, depth=2, heads=2, reg_tokens=2,
                                 pool=pool).eval()
    x = pre(raw_rows())
    assert model(x).shape == (5, dim) and model.dim == dim
    assert model.tokens(x).shape == (5, 2 + 5, 8)
    keep = torch.tensor([[4, 0], [1, 2], [3, 4], [0, 1], [2, 3]])
    assert model.tokens(x, keep).shape == (5, 2 + 2, 8)
    everything = torch.arange(5).expand(5, -1)
    assert torch.allclose(model.tokens(x, everything), model.tokens(x), atol=1e-6)
    named = model.named_features(x)
    assert list(named) == ["block1", "block2"]
    assert torch.allclose(named["block2"], model(x), atol=1e-6)


def test_regularization_tokens_do_not_depend_on_the_row(pre):
    model = build_table_backbone("ft_transformer", pre, dim=8, depth=0, heads=2, reg_tokens=3)
    x = pre(raw_rows())
    emb = model._embed(x, None)  # (5, 3 + 5, 8) before any block
    assert torch.equal(emb[:, :3], model.reg_tokens.expand(5, -1, -1))


def test_save_and_load_keep_weights_and_preprocessing(tmp_path, pre):
    model = build_table_backbone("ft_transformer", pre, dim=8, depth=1, heads=2).eval()
    save_encoder(model, tmp_path)
    loaded = load_encoder(tmp_path)
    assert loaded.preprocessing == pre
    rows = raw_rows()
    assert torch.equal(loaded(loaded.preprocessing(rows)), model(pre(rows)))


def test_bad_inputs(pre):
    from selfsup.backbones import Preprocessing, get_backbone

    model = build_table_backbone("ft_transformer", pre, dim=8, depth=1, heads=2)
    with pytest.raises(ValueError, match=r"takes preprocessed rows \(B, 5\)"):
        model(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="encodes images; a table needs one of ft_transformer"):
        build_table_backbone("resnet10w32", pre)
    with pytest.raises(ValueError, match="encodes tables, not images"):
        get_backbone("ft_transformer").build(Preprocessing(8, 1, (0.5,), (0.25,)))
    with pytest.raises(ValueError, match="unknown ft_transformer setting"):
        build_table_backbone("ft_transformer", pre, width=3)
