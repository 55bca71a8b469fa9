"""MAE's lightweight decoder (He et al. 2021, sec. 3 "MAE decoder"), reusable by the masked
family: it sees the encoded visible tokens plus one shared, learned mask token at every masked
position, and predicts each patch's pixels."""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block
from torch import nn

from ..backbones.vit import LayerNorm, init_vit_weights, sincos_pos_embed_2d


class MaskedDecoder(nn.Module):
    """Encoder tokens (B, 1 + n_keep, encoder_dim), CLS first, and the ``ids_restore``
    (B, L) of `selfsup.views.masking.random_masking` -> per-patch predictions (B, L, out_dim)
    in original patch order (out_dim = p*p*C for pixels).

    As MAE's ``forward_decoder``: embed to the decoder width, append L - n_keep mask tokens
    after the visible ones (the shuffled order the encoder saw), gather with ``ids_restore`` to
    undo the shuffle, put CLS back in front, add fixed sin-cos positions, run ``depth`` blocks,
    norm, predict, and drop CLS.
    """

    def __init__(self, num_patches: int, grid_size: int, encoder_dim: int, dim: int,
                 depth: int, heads: int, out_dim: int, mlp_ratio: float = 4.0):
        super().__init__()
        if num_patches != grid_size**2:
            raise ValueError(f"{num_patches} patches do not make a {grid_size}x{grid_size} grid")
        if dim % heads:
            raise ValueError(f"decoder width {dim} is not divisible by {heads} heads")
        self.num_patches = num_patches
        self.embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos_embed", sincos_pos_embed_2d(dim, grid_size)[None])
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio, qkv_bias=True, norm_layer=LayerNorm)
            for _ in range(depth))
        self.norm = LayerNorm(dim)
        self.pred = nn.Linear(dim, out_dim)
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(init_vit_weights)

    def forward(self, tokens: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.sequence(tokens, ids_restore)  # (B, 1 + L, dim)
        for block in self.blocks:
            x = block(x)
        return self.pred(self.norm(x))[:, 1:]  # (B, L, out_dim)

    def sequence(self, tokens: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """The blocks' input (B, 1 + L, dim): embedded tokens and mask tokens in original patch
        order, CLS first, positions added. A second `DecoderBranch` may read it too (HPM)."""
        x = self.embed(tokens)  # (B, 1 + n_keep, dim)
        b, n, d = x.shape
        if ids_restore.shape != (b, self.num_patches):
            raise ValueError(f"ids_restore must be (B, {self.num_patches}), got "
                             f"{tuple(ids_restore.shape)}")
        masked = self.mask_token.expand(b, self.num_patches + 1 - n, d).to(x.dtype)
        x_ = torch.cat([x[:, 1:], masked], dim=1)  # (B, L, dim), shuffled order
        x_ = torch.gather(x_, 1, ids_restore[..., None].expand(-1, -1, d))  # original order
        return torch.cat([x[:, :1], x_], dim=1) + self.pos_embed  # (B, 1 + L, dim)


class DecoderBranch(nn.Module):
    """``depth`` transformer blocks, a LayerNorm and a linear prediction over a token sequence:
    (B, N, dim) -> (B, N, out_dim). One more branch beside a decoder: HPM's loss predictor reads
    `MaskedDecoder.sequence` beside the pixel blocks; CAE's decoder runs one, with layer scale
    (``init_values``), over its predicted masked representations."""

    def __init__(self, dim: int, depth: int, heads: int, out_dim: int, mlp_ratio: float = 4.0,
                 init_values: float | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"decoder width {dim} is not divisible by {heads} heads")
        self.blocks = nn.ModuleList(
            Block(dim, heads, mlp_ratio, qkv_bias=True, init_values=init_values,
                  norm_layer=LayerNorm)
            for _ in range(depth))
        self.norm = LayerNorm(dim)
        self.pred = nn.Linear(dim, out_dim)
        self.apply(init_vit_weights)  # layer-scale gammas keep init_values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.pred(self.norm(x))
