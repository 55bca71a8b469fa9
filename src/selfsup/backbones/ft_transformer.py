"""FT-Transformer (Gorishniy et al. 2021, "Revisiting Deep Learning Models for Tabular Data"):
a feature tokenizer, then a small Transformer over one token per feature.

The tokenizer (their eq. 1): numeric input j gives ``T_j = b_j + x_j W_j`` (one learned affine
map per feature), categorical input j gives ``T_j = b_j + E_j[x_j]`` (an embedding per value).
The per-feature weights and biases say which feature a token is, so no position embedding is
needed. In place of FT-Transformer's [CLS] token this encoder prepends ``reg_tokens`` learned
tokens that depend on no input: T-JEPA's regularization tokens (Thimonier et al. 2024), which a
masked encoder always sees (methods/tjepa.py).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import nn

from .registry import register_backbone
from .table_preprocessing import TablePreprocessing
from .token_encoder import TokenEncoder

POOLS = ("flatten", "mean", "reg")
LayerNorm = partial(nn.LayerNorm, eps=1e-6)


class FeatureTokenizer(nn.Module):
    """Inputs (B, T) from `TablePreprocessing` -> one token per input (B, T, dim)."""

    def __init__(self, num_numeric: int, cardinalities: tuple[int, ...], dim: int):
        super().__init__()
        self.num_numeric = num_numeric
        n = num_numeric + len(cardinalities)
        self.weight = nn.Parameter(torch.empty(num_numeric, dim))
        self.bias = nn.Parameter(torch.empty(n, dim))
        self.embed = nn.Embedding(max(1, sum(cardinalities)), dim)
        offsets = torch.tensor((0, *cardinalities[:-1])).cumsum(0) if cardinalities else \
            torch.zeros(0, dtype=torch.long)
        self.register_buffer("offsets", offsets, persistent=False)
        # rtdl's initialization: uniform in +-1/sqrt(dim)
        bound = 1 / math.sqrt(dim)
        for p in (self.weight, self.bias, self.embed.weight):
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.num_numeric
        tokens = self.weight * x[:, :n, None]  # (B, n_num, dim)
        if x.shape[1] > n:
            cats = self.embed(x[:, n:].long() + self.offsets)  # (B, n_cat, dim)
            tokens = torch.cat([tokens, cats], dim=1)
        return tokens + self.bias  # (B, T, dim)


class FTTransformer(TokenEncoder):
    """Feature tokens behind ``reg_tokens`` regularization tokens, ``depth`` pre-norm timm
    blocks and a final LayerNorm. Pooled features (B, dim): all output tokens flattened
    (``pool="flatten"``, the representation T-JEPA's downstream models read; dim = (R + T) *
    embed_dim), the mean of the feature tokens (``"mean"``) or of the regularization tokens
    (``"reg"``).

    ``tokens(x, keep)`` encodes the regularization tokens and only the features ``keep`` names.
    """

    def __init__(self, preprocessing: TablePreprocessing, *, name: str, dim: int = 64,
                 depth: int = 3, heads: int = 4, mlp_ratio: float = 2.0, reg_tokens: int = 1,
                 pool: str = "flatten"):
        super().__init__()
        if not isinstance(preprocessing, TablePreprocessing):
            raise ValueError(f"{name} encodes tables, not {preprocessing.modality}s")
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; valid: {', '.join(POOLS)}")
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        if reg_tokens < 0 or (pool == "reg" and reg_tokens == 0):
            raise ValueError(f"reg_tokens must be >= 0 (>= 1 for pool 'reg'), got {reg_tokens}")
        self.preprocessing = preprocessing
        self.embed_dim, self.depth, self.pool = dim, depth, pool
        self.num_features = preprocessing.num_tokens  # feature tokens T
        self.num_prefix_tokens = reg_tokens
        self.dim = (reg_tokens + self.num_features) * dim if pool == "flatten" else dim
        self.config = {"name": name, "dim": dim, "depth": depth, "heads": heads,
                       "mlp_ratio": mlp_ratio, "reg_tokens": reg_tokens, "pool": pool}
        self.tokenizer = FeatureTokenizer(preprocessing.num_numeric,
                                          preprocessing.cardinalities, dim)
        self.reg_tokens = nn.Parameter(torch.empty(1, reg_tokens, dim))
        nn.init.normal_(self.reg_tokens, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, qkv_bias=True,
                                          norm_layer=LayerNorm) for _ in range(depth))
        self.norm = LayerNorm(dim)

    def _embed(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"{self.config['name']} takes preprocessed rows (B, "
                             f"{self.num_features}), got {tuple(x.shape)}")
        tokens = self.tokenizer(x)  # (B, T, dim)
        if keep is not None:
            tokens = torch.gather(tokens, 1, keep[..., None].expand(-1, -1, tokens.shape[-1]))
        reg = self.reg_tokens.expand(x.shape[0], -1, -1).to(tokens.dtype)
        return torch.cat([reg, tokens], dim=1)  # (B, R + n, dim)

    def tokens(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Normed output tokens (B, R + n, dim), the R regularization tokens first; n = T, or
        only the features ``keep`` (B, n) int64 names (ids in 0..T-1), in ``keep``'s order."""
        x = self._embed(x, keep)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def _pool(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.pool == "flatten":
            return tokens.flatten(1)
        r = self.num_prefix_tokens
        return tokens[:, :r].mean(1) if self.pool == "reg" else tokens[:, r:].mean(1)


@register_backbone("ft_transformer", family="table")
def build(preprocessing: TablePreprocessing, **config) -> FTTransformer:
    known = {"dim", "depth", "heads", "mlp_ratio", "reg_tokens", "pool"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"unknown ft_transformer setting(s) {unknown}; valid: "
                         f"{', '.join(sorted(known))}")
    return FTTransformer(preprocessing, name="ft_transformer", **config)
