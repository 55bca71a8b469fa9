"""What the token backbones (ViT, FT-Transformer) share: the pooled features probes read."""

from __future__ import annotations

import torch
from torch import nn


class TokenEncoder(nn.Module):
    """A stack of ``blocks`` over ``_embed``'s tokens, a final ``norm`` and ``_pool``; the
    subclass defines those and ``tokens(x, keep)``."""

    blocks: nn.ModuleList
    norm: nn.Module

    def _embed(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def _pool(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def tokens(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._pool(self.tokens(x))  # (B, dim)

    def named_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pooled tokens after each block, ``block1`` .. ``blockN``, (B, dim) each. The final
        norm is applied to every one so the depths are on one scale (probes compare them);
        the last is therefore ``forward(x)``."""
        x = self._embed(x, None)
        out = {}
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            out[f"block{i}"] = self._pool(self.norm(x))
        return out
