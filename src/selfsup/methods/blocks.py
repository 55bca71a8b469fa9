"""Transformer blocks of the masked family beyond timm's self-attention ``Block``: CAE's
cross-attention block (Chen et al. 2022, "Context Autoencoder for Self-Supervised Representation
Learning", sec. 3 "Latent contextual regressor"), which lets queries at chosen positions read a
context they are not part of."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

from ..backbones.vit import LayerNorm


class CrossAttention(nn.Module):
    """Multi-head attention of queries (B, Nq, dim) over keys and values (B, Nk, dim), each
    through its own projection, as CAE's ``CrossAttention``. The query and value projections
    have biases, the key projection none: a key bias adds one constant to every logit of a
    query, which the softmax cancels (CAE keeps it at zero)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, nq, d = q.shape

        def split(t: torch.Tensor) -> torch.Tensor:  # (B, N, dim) -> (B, heads, N, dim / heads)
            return t.view(b, t.shape[1], self.heads, d // self.heads).transpose(1, 2)

        x = F.scaled_dot_product_attention(split(self.q(q)), split(self.k(k)), split(self.v(v)))
        return self.proj(x.transpose(1, 2).reshape(b, nq, d))  # (B, Nq, dim)


class CrossAttentionBlock(nn.Module):
    """CAE's ``RegressorBlock``: queries z (B, Nq, dim) at positions ``pos_q`` read a context
    c (B, Nk, dim) at positions ``pos_k``. Positions enter queries and keys, never values; the
    attention output is normed before the MLP (post-norm), and both branches are scaled by
    learnable per-channel gammas that start at ``init_values`` (layer scale)::

        z = z + g1 * attn(LN_q(z + pos_q), LN_k(c + pos_k), LN_v(c))
        z = LN(z)
        z = z + g2 * mlp(z)
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, init_values: float = 0.1):
        super().__init__()
        self.norm_q, self.norm_k, self.norm_v = LayerNorm(dim), LayerNorm(dim), LayerNorm(dim)
        self.attn = CrossAttention(dim, heads)
        self.norm = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.gamma1 = nn.Parameter(torch.full((dim,), float(init_values)))
        self.gamma2 = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, z: torch.Tensor, context: torch.Tensor, pos_q: torch.Tensor,
                pos_k: torch.Tensor) -> torch.Tensor:
        z = z + self.gamma1 * self.attn(self.norm_q(z + pos_q), self.norm_k(context + pos_k),
                                        self.norm_v(context))
        z = self.norm(z)
        return z + self.gamma2 * self.mlp(z)
