"""CAE, context autoencoder (Chen et al. 2022, "Context Autoencoder for Self-Supervised
Representation Learning").

The encoder sees only the visible patches. A latent regressor of cross-attention blocks predicts
the masked patches' representations from them: its queries are mask tokens at the masked
positions, its keys the visible and masked tokens with their positions, its values the same
tokens without positions. The prediction is aligned (MSE, weight 2) with what the encoder
itself makes of the masked patches, computed without gradient by the current encoder weights,
and a decoder of self-attention blocks over the masked predictions alone reconstructs the
masked patches. The encoder never sees a mask token nor makes a prediction: the regressor and
decoder do the pretext task, the encoder only represents, which is the paper's point.

Follows the official code (Atten4Vis/CAE, models/modeling_cae.py ``ContextAutoencoderViT`` and
models/modeling_cae_helper.py ``RegressorBlock``, ``LatentRegresser``, ``Decoder``; the loss of
furnace/engine_for_pretraining.py) except where small images or missing weights force it:

- target: the paper's decoder predicts the DALL-E tokenizer's codes of the masked patches
  (cross-entropy over 8192). No tokenizer is available here (nor meaningful at 28 px), so the
  decoder regresses per-patch normalized pixels, MAE's target (`MaskedReconstruction`). That
  weaker signal does not hold off the alignment's trivial minimum, a constant encoder: on
  Fashion-MNIST the encoder collapses within the first few hundred steps (benchmarks/RESULTS.md,
  "CAE on Fashion-MNIST, 30m").
- masks: BEiT's block-wise masking of half the patches, as the official 98 of 196, with blocks
  of at least 2 patches instead of 16 (`block_masking` explains why for 7x7 grids).
- encoder: the library's ViT (MAE's: no layer scale, no drop path); CAE's encoder has layer
  scale 0.1 and drop path 0.1. Positions are MAE's 2-D sin-cos; CAE's puts the row half first.
- sizes: the regressor keeps the official 4 blocks at the encoder's width and heads (the
  official models regress at the encoder width too); the decoder has 2 blocks, not 4, as MAE's
  decoder here. Gradients are clipped to norm 3.0 as officially (the recipe's ``grad_clip``).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.vit import LayerNorm, init_vit_weights, sincos_pos_embed_2d
from ..data.batch import Batch
from ..data.spec import DataSpec
from ..objectives.masked import MaskedReconstruction
from ..views.masking import block_masking, patchify
from .base import Method
from .blocks import CrossAttentionBlock
from .decoder import DecoderBranch
from .mae import MAE
from .registry import register


def _gather(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Rows ``ids`` (B, n) of x (B, L, D) -> (B, n, D)."""
    return torch.gather(x, 1, ids[..., None].expand(-1, -1, x.shape[-1]))


@register("cae", family="masked image modelling",
          paper="Chen et al. 2022, Context Autoencoder for Self-Supervised Representation "
                "Learning",
          status="collapses")  # the learning guard (selfsup/guard.py) measures the status
class CAE(Method):
    # MAE's recipe and views here, so the two compare on one budget (CAE's own: AdamW lr 1.5e-3
    # at batch 2048, wd 0.05, 300-1600 epochs, no colour jitter), plus CAE's own gradient
    # clipping at norm 3.0 (the official --clip_grad)
    recipe = dataclasses.replace(MAE.recipe, grad_clip=3.0)

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 mask_ratio: float = 0.5, align_weight: float = 2.0, norm_pix: bool = True,
                 dim: int | None = None, heads: int | None = None, regressor_depth: int = 4,
                 decoder_depth: int = 2, layer_scale: float = 0.1):
        super().__init__(backbone, views, data)
        if not callable(getattr(backbone, "tokens", None)):
            raise ValueError("cae needs a token backbone (vit_tiny, vit_small), got "
                             f"{type(backbone).__name__}")
        n = backbone.num_patches
        self.num_masked = int(n * mask_ratio)
        if not 1 <= self.num_masked < n:
            raise ValueError(f"mask_ratio {mask_ratio} must mask between 1 and {n - 1} of the "
                             f"{n} patches")
        self.align_weight = align_weight
        dim = dim or backbone.dim
        heads = heads or backbone.config["heads"]
        p, c = backbone.patch_size, backbone.preprocessing.channels
        # the official model projects (Linear + LayerNorm) only when the widths differ
        self.to_regressor = (nn.Identity() if dim == backbone.dim else
                             nn.Sequential(nn.Linear(backbone.dim, dim), LayerNorm(dim)))
        self.register_buffer("pos_embed", sincos_pos_embed_2d(dim, backbone.grid_size,
                                                              cls_token=False)[None])
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.regressor = nn.ModuleList(CrossAttentionBlock(dim, heads, init_values=layer_scale)
                                       for _ in range(regressor_depth))
        self.regressor_norm = LayerNorm(dim)
        self.decoder = DecoderBranch(dim, decoder_depth, heads, out_dim=p * p * c,
                                     init_values=layer_scale)
        for module in (self.to_regressor, self.regressor, self.regressor_norm):
            module.apply(init_vit_weights)  # the official model: xavier Linears throughout
        nn.init.trunc_normal_(self.mask_token, std=0.02, a=-0.02, b=0.02)  # CAE's truncation
        self.objective = MaskedReconstruction(norm_pix=norm_pix)

    def losses(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalized images (B, C, S, S) and a mask (B, L), True = masked, with the same count
        in every row -> the loss and its two terms."""
        b, n_mask = x.shape[0], self.num_masked
        # visible patches first, then masked, each in patch order (the official x[~mask])
        order = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)  # (B, L)
        ids_vis, ids_mask = order[:, :-n_mask], order[:, -n_mask:]
        visible = self.to_regressor(self.backbone.tokens(x, keep=ids_vis))[:, 1:]  # (B, n_vis, d)
        with torch.no_grad():  # the alignment target: the current encoder on the masked patches
            target = self.to_regressor(self.backbone.tokens(x, keep=ids_mask))[:, 1:]
        pos = self.pos_embed.expand(b, -1, -1)  # (B, L, d)
        pos_vis, pos_mask = _gather(pos, ids_vis), _gather(pos, ids_mask)
        pos_all = torch.cat([pos_vis, pos_mask], dim=1)
        z = self.mask_token.expand(b, n_mask, -1).to(visible.dtype)  # (B, n_mask, d)
        for block in self.regressor:
            z = block(z, torch.cat([visible, z], dim=1), pos_mask, pos_all)
        z = self.regressor_norm(z)  # the predicted representations of the masked patches
        pixels = self.decoder(z + pos_mask)  # (B, n_mask, p*p*C)
        patches = _gather(patchify(x, self.backbone.patch_size), ids_mask)
        recon = self.objective(pixels, patches, torch.ones(b, n_mask, device=x.device))
        align = F.mse_loss(z.float(), target.float())
        return {"loss": recon + self.align_weight * align, "reconstruction_loss": recon.detach(),
                "alignment_loss": align.detach()}

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.views(batch.inputs)  # (B, C, S, S), normalized
        mask = block_masking(x.shape[0], self.backbone.grid_size, self.num_masked, x.device)
        return self.losses(x, mask)
