"""Selfie (Trinh et al. 2019, "Selfie: Self-supervised Pretraining for Image Embedding").

BERT's masked-token prediction for images, with CPC's loss in place of a softmax over a
vocabulary. A patch network P (the backbone, a convolutional trunk) encodes every patch of a
grid on its own; an attention-pooling network A of transformer layers summarizes the visible
patches' codes into u, read at an extra token u_0; for each masked location i, a query built
from u and the location's embedding must pick, by dot product, the patch that was there among
all the image's masked patches::

    h_k = P(patch_k)
    u   = A(u_0, {h_k + pos_k : k visible})
    v_i = g(u + pos_i)                                 (the paper: v_i = u + pos_i)
    L   = - mean_i log softmax_j(v_i . h_j)[i]         (i, j over the masked patches)

The paper's product is P: fine-tuning reuses its convolutional weights on the whole image. Here
too the saved encoder is the backbone P, run on the whole image and globally average-pooled as
every ResNet is; A, the positions and g are pretraining heads, dropped like MAE's decoder.

No official code was published; this follows the paper's section 2. Choices the paper leaves
open, or small images force:

- query head g, a 2-layer MLP (``query_mlp=False`` gives the paper's sum). With v_i = u + pos_i
  the logit v_i . h_j splits into u . h_j + pos_i . h_j: the image's context enters only as a
  bias on each candidate, the same for every masked location, so it cannot say which patch goes
  where, and A learns nothing the loss needs. A nonlinearity on the sum lets context and
  location interact; u is still computed once for all masked locations, as the paper's
  efficient implementation does.
- P: ``resnet8w32``, the first three stages of the CPU default ResNet (the paper: the first
  three of ResNet-50); A: two pre-norm transformer layers at P's width.
- grid: the paper's 4x4 grid of its 32 px setting at every size (2 px patches on 8 px digits,
  7 px on 28 px Fashion-MNIST); positions learned per patch on it, and as row plus column
  embeddings on larger grids, as the paper does on its 7x7 one. The paper adds positions only
  to the query; the visible codes get them too here, since a transformer over an unordered set
  cannot tell where a visible patch sits.
- precision: on 2 px patches (8 px digits) P runs in fp32 under bf16 autocast; oneDNN's bf16
  convolution on their 1x1 maps produced non-finite outputs from finite inputs.
- mask: half the patches, drawn uniformly per image (8 of 16: each query chooses among 8).
- views: one crop at scale (0.6, 1) and flips, near the paper's pad-4-and-crop of 32 px images;
  AdamW with MAE's recipe, not the paper's schedule.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from timm.models.vision_transformer import Block
from torch import nn

from ..backbones.vit import LayerNorm, init_vit_weights
from ..data.batch import Batch
from ..data.spec import DataSpec
from ..objectives.masked import PatchChoice
from ..views import ViewConfig
from ..views.masking import patchify, random_masking
from .base import Method, Recipe
from .registry import register


def _gather(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Rows ``ids`` (B, n) of x (B, L, D) -> (B, n, D)."""
    return torch.gather(x, 1, ids[..., None].expand(-1, -1, x.shape[-1]))


@register("selfie", family="masked image modelling",
          paper="Trinh et al. 2019, Selfie: Self-supervised Pretraining for Image Embedding",
          status="experimental")  # the learning guard (selfsup/guard.py) measures the status
class Selfie(Method):
    recipe = Recipe(optimizer="adamw", lr=1.5e-3, weight_decay=0.05, warmup_fraction=0.05,
                    betas=(0.9, 0.95), backbone="resnet8w32",
                    views=ViewConfig(kind="one_crop", crop_scale=(0.6, 1.0), crop_ratio=1.0,
                                     jitter_p=0.0, grayscale_p=0.0))

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 mask_ratio: float = 0.5, grid: int = 4, depth: int = 2, heads: int = 4,
                 query_mlp: bool = True):
        super().__init__(backbone, views, data)
        size = backbone.preprocessing.input_size
        if size % grid:
            raise ValueError(f"selfie cuts images into a {grid}x{grid} grid; {size} px do not "
                             "split evenly (set grid)")
        n, d = grid * grid, backbone.dim
        random_masking(1, n, mask_ratio, noise=torch.zeros(1, n))  # rejects a bad ratio early
        if n - int(n * (1 - mask_ratio)) < 2:
            raise ValueError(f"mask_ratio {mask_ratio} masks fewer than 2 of {n} patches: "
                             "the right patch needs a distractor")
        self.mask_ratio, self.grid = mask_ratio, grid
        self.factorized = grid > 4  # the paper's 7x7 grid: 7 + 7 embeddings, not 49
        self.pos_embed = nn.Parameter(0.02 * torch.randn((2, grid, d) if self.factorized
                                                         else (n, d)))
        self.pool_token = nn.Parameter(0.02 * torch.randn(1, 1, d))  # u_0
        self.pool_blocks = nn.Sequential(*(Block(d, heads, qkv_bias=True, norm_layer=LayerNorm)
                                           for _ in range(depth)), LayerNorm(d))
        self.pool_blocks.apply(init_vit_weights)
        self.query_head = (nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
                           if query_mlp else nn.Identity())
        self.objective = PatchChoice()

    def positions(self) -> torch.Tensor:
        """Every patch's position embedding (L, dim), row-major."""
        if not self.factorized:
            return self.pos_embed
        rows, cols = self.pos_embed  # (G, dim) each
        return (rows[:, None] + cols[None]).flatten(0, 1)

    def loss(self, x: torch.Tensor, ids_keep: torch.Tensor, ids_restore: torch.Tensor
             ) -> torch.Tensor:
        """Selfie's loss on normalized images (B, C, S, S) under a mask (`random_masking`'s
        ``ids_keep`` and ``ids_restore``)."""
        (b, c, s), g = x.shape[:3], self.grid
        if s % g:
            raise ValueError(f"a {s} px view does not split into a {g}x{g} grid")
        p = s // g
        patches = patchify(x, p).unflatten(2, (p, p, c)).permute(0, 1, 4, 2, 3)  # (B,L,C,p,p)
        # 2 px patches reach 1x1 maps at P's third stage, where oneDNN's bf16 3x3/2 convolution
        # now and then returned non-finite values from finite inputs (3 of 3 bf16 runs on
        # digits, at steps 59-390; none in fp32): patches that small run P in fp32
        fp32 = p <= 2
        with torch.autocast(x.device.type, enabled=False) if fp32 else nullcontext():
            h = self.backbone(patches.flatten(0, 1).float())  # (B*L, dim)
        h = h.unflatten(0, (b, -1))  # (B, L, dim), P on each patch alone
        pos = self.positions()  # (L, dim)
        ids_masked = ids_restore.argsort(dim=1)[:, ids_keep.shape[1]:]  # (B, M)
        context = torch.cat([self.pool_token.expand(b, -1, -1).to(h.dtype),
                             _gather(h, ids_keep) + pos[ids_keep]], dim=1)  # (B, 1 + n, dim)
        u = self.pool_blocks(context)[:, :1]  # (B, 1, dim)
        queries = self.query_head(u + pos[ids_masked])  # (B, M, dim)
        return self.objective(queries, _gather(h, ids_masked))

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.views(batch.inputs)  # (B, C, S, S), normalized
        ids_keep, _, ids_restore = random_masking(x.shape[0], self.grid**2, self.mask_ratio,
                                                  x.device)
        return {"loss": self.loss(x, ids_keep, ids_restore)}
