"""MixedAE (Chen et al. 2023, "Mixed Autoencoder for Self-supervised Visual Representation
Learning").

MAE on mixtures of images: each group of r images shares one patch grid, every position takes
its patch from one member (`selfsup.views.mixing.patch_mixing`), segment embeddings mark each
patch's source, the encoder reads the mixed image once with homologous attention (a patch
attends only to patches of its own source), MAE's decoder reconstructs every member from its
own encoded patches, and a homologous contrastive term asks each patch to recognise its
homologous patches::

    L = (1 / (G r)) sum_{g, m} MSE(dec(enc(mix_g)[own_m]), x_{g m}; not own_m)     (MAE's loss)
        + lambda * HomoCon(h(enc(mix_g)[patches]), source)

No official code exists; every choice below is ours, from the paper's description:

- group size r = 4, so each image owns k = L // 4 positions, MAE's 25% visible share: the
  encoder reads as many tokens per image as MAE's. Positions left when 4 does not divide L
  (1 of 49 on 28 px) belong to no image and are dropped. Groups are 4 consecutive images of
  the batch; the last B mod 4 images of a batch sit out the step.
- segment embeddings: r learned vectors (normal, std 0.02), one per member slot, added to the
  patch embeddings with the positions (the ViT's ``extra_embed``); they stay out of the
  exported encoder, which never sees a mixture. Under attention masked by the true sources a
  patch sees one segment only, so they chiefly tell the class token which source is which.
- homologous attention: in every encoder block, from the true sources (the ViT's
  ``attn_mask``): a patch attends to its own source's patches and the class token; the class
  token, one per mixture, attends to every patch. The paper, as we read it, lets the encoder
  find the homologous keys itself (a TopK over each query's attention scores); timm's blocks do
  not expose their scores, and a mask of the true sources is what the issue asks for, so here
  the recognition is the homologous contrastive term's alone. With ``homologous_weight=0``
  MixedAE is thus MAE at mask ratio 1 - 1/r except for the class token the r images share.
- decoder: MAE's (`MaskedDecoder`, 128 wide, 2 blocks here), once per member: the mixture's
  class token, the member's own encoded patches and mask tokens elsewhere; MAE's per-patch
  normalized pixel loss on the member's other positions.
- homologous contrastive (`HomologousContrastive`): a 2-layer projection head (512 hidden,
  128 out) on the encoder's patch tokens, the supervised contrastive loss within each mixture
  with the source as label, temperature 0.2, weight 0.1 (the reconstruction loss of
  normalized pixels starts near 1, the contrastive term near log(n - 1)).
- recipe: MAE's (views, optimizer, schedule).
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.batch import Batch
from ..data.spec import DataSpec
from ..objectives.masked import HomologousContrastive, MaskedReconstruction
from ..views.masking import patchify
from ..views.mixing import (
    PatchMixing,
    homologous_attention_mask,
    mix_images,
    patch_mixing,
)
from .base import Method
from .decoder import MaskedDecoder
from .heads import projection_mlp
from .mae import MAE
from .registry import register


@register("mixedae", family="masked image modelling",
          paper="Chen et al. 2023, Mixed Autoencoder for Self-supervised Visual Representation "
                "Learning")
class MixedAE(Method):
    recipe = MAE.recipe

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 group_size: int = 4, norm_pix: bool = True, homologous_weight: float = 0.1,
                 temperature: float = 0.2, proj_hidden_dim: int = 512, proj_dim: int = 128,
                 decoder_dim: int = 128, decoder_depth: int = 2, decoder_heads: int = 4):
        super().__init__(backbone, views, data)
        if not callable(getattr(backbone, "tokens", None)):
            raise ValueError("mixedae needs a token backbone (vit_tiny, vit_small), got "
                             f"{type(backbone).__name__}")
        if group_size < 2 or backbone.num_patches // group_size < 2:
            raise ValueError(f"group_size must be >= 2 and leave each image 2 of the "
                             f"{backbone.num_patches} patches or more, got {group_size}")
        if homologous_weight < 0:
            raise ValueError(f"homologous_weight must be >= 0, got {homologous_weight}")
        self.group_size, self.homologous_weight = group_size, homologous_weight
        self.patch_size = backbone.patch_size
        self.channels = backbone.preprocessing.channels
        self.segment_embed = nn.Parameter(torch.zeros(group_size, backbone.dim))
        nn.init.normal_(self.segment_embed, std=0.02)
        self.decoder = MaskedDecoder(backbone.num_patches, backbone.grid_size, backbone.dim,
                                     decoder_dim, decoder_depth, decoder_heads,
                                     out_dim=self.patch_size**2 * self.channels)
        self.objective = MaskedReconstruction(norm_pix=norm_pix)
        self.homologous_head = projection_mlp(backbone.dim, proj_hidden_dim, proj_dim)
        self.homologous = HomologousContrastive(temperature)

    def losses(self, x: torch.Tensor, mixing: PatchMixing) -> dict[str, torch.Tensor]:
        """Images (G r, C, S, S), member m of group g at g r + m, and the mixing drawn."""
        g, r = mixing.source.shape[0], self.group_size
        mixed = mix_images(x, mixing.source, self.patch_size)  # (G, C, S, S)
        sources = mixing.source.gather(1, mixing.ids_mixed)  # (G, r k) member of each token
        latent = self.backbone.tokens(
            mixed, keep=mixing.ids_mixed, attn_mask=homologous_attention_mask(sources),
            extra_embed=self.segment_embed[mixing.source.clamp_min(0)])  # (G, 1 + r k, dim)
        patches = latent[:, 1:]  # member m's run of k tokens is its ids_keep, in order
        own = patches.reshape(g * r, -1, patches.shape[-1])  # (G r, k, dim)
        cls = latent[:, :1].repeat_interleave(r, dim=0)  # (G r, 1, dim)
        pred = self.decoder(torch.cat([cls, own], dim=1), mixing.ids_restore)  # (G r, L, ppC)
        rec = self.objective(pred, patchify(x, self.patch_size), mixing.mask)
        z = self.homologous_head(patches.flatten(0, 1)).unflatten(0, (g, -1))  # (G, r k, D)
        homo = self.homologous(z, sources)
        return {"loss": rec + self.homologous_weight * homo, "reconstruction_loss": rec.detach(),
                "homologous_loss": homo.detach()}

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.views(batch.inputs)  # (B, C, S, S), normalized
        groups = x.shape[0] // self.group_size
        if groups == 0:
            raise ValueError(f"mixedae mixes groups of {self.group_size} images; a batch of "
                             f"{x.shape[0]} holds none")
        mixing = patch_mixing(groups, self.backbone.num_patches, self.group_size, x.device)
        return self.losses(x[:groups * self.group_size], mixing)
