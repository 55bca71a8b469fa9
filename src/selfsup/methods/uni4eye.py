"""Uni4Eye (Cai et al. 2022, "Uni4Eye: Unified 2D and 3D Self-supervised Pre-training via
Masked Image Modeling Transformer for Ophthalmic Image Classification").

MAE with a dual-branch decoder: one ViT encoder on the visible patches, and two decoders that
reconstruct, on the masked patches, the image and its gradient map (the Sobel magnitude
sqrt(Gx^2 + Gy^2) of each channel of the normalized view). The gradient branch asks the
encoder for edges, the discriminative part of the image, beside its intensities. The encoder
is the product.

The Uni4Eye repository itself was not available to this implementation. The structure follows
the paper and the two-decoder model of the same authors' successor code (Davidczy/Uni4Eye_pp,
models_mae.py ``MaskedAutoencoderViT23D_2decoder``): two decoder branches, each with its own
embedding, mask token and blocks, over one encoder; per-patch squared errors of both branches
summed on the masked patches with equal weight. ``gradient_weight`` (default 1.0) scales the
gradient term: 1.0 is that code's equal sum, and the paper states no other weight. Choices:

- both targets are normalized per patch (``norm_pix``); that code normalizes only the image and
  its second target is a map in [0, 1]. The Sobel magnitude of a normalized view is far larger:
  its mean square is 25-75 against 0.5-0.6 for the normalized pixels on Fashion-MNIST and
  digits, so raw it would drown the image term. Normalized, the two terms share one scale and
  the weight 1.0 means what it says: equal.

- each branch has its own final LayerNorm (a `MaskedDecoder` is a whole branch); that code
  shares one between the two.
- the gradient map is computed on the fly, batched (a fixed 3x3 Sobel convolution per channel,
  borders reflected as OpenCV's default ``BORDER_REFLECT_101``), patchified like the image.
- 2-D images only: the paper's unified 2-D/3-D patch embedding has nothing to do here.
- decoder width and depth as MAE's here (128 x 2 each; the paper's MAE decoders are 512 x 8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.batch import Batch
from ..data.spec import DataSpec
from ..views.masking import patchify, random_masking
from .decoder import MaskedDecoder
from .mae import MAE
from .registry import register

SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


@torch.no_grad()
def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Per-channel Sobel gradient magnitude (B, C, H, W) -> (B, C, H, W), reflect-101 borders."""
    c = x.shape[1]
    gx = torch.tensor(SOBEL_X, dtype=x.dtype, device=x.device)
    kernel = torch.stack([gx, gx.T])[:, None].repeat(c, 1, 1, 1)  # (2C, 1, 3, 3): x, y per channel
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=c)  # (B, 2C, H, W)
    return g.unflatten(1, (c, 2)).pow(2).sum(2).sqrt()


@register("uni4eye", family="masked image modelling",
          paper="Cai et al. 2022, Uni4Eye: Unified 2D and 3D Self-supervised Pre-training via "
                "Masked Image Modeling Transformer for Ophthalmic Image Classification",
          status="collapses")  # the learning guard (selfsup/guard.py) measures the status
class Uni4Eye(MAE):
    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 mask_ratio: float = 0.75, norm_pix: bool = True, decoder_dim: int = 128,
                 decoder_depth: int = 2, decoder_heads: int = 4, gradient_weight: float = 1.0):
        super().__init__(backbone, views, data, mask_ratio, norm_pix, decoder_dim,
                         decoder_depth, decoder_heads)
        self.gradient_weight = gradient_weight
        self.gradient_decoder = MaskedDecoder(
            backbone.num_patches, backbone.grid_size, backbone.dim, decoder_dim, decoder_depth,
            decoder_heads, out_dim=self.patch_size**2 * self.channels)

    def losses(self, x: torch.Tensor, ids_keep: torch.Tensor, mask: torch.Tensor,
               ids_restore: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss and its two terms for images (B, C, S, S) under a mask (`random_masking`'s
        three outputs)."""
        latent = self.backbone.tokens(x, keep=ids_keep)  # (B, 1 + n_keep, dim)
        p = self.patch_size
        image = self.objective(self.decoder(latent, ids_restore), patchify(x, p), mask)
        gradient = self.objective(self.gradient_decoder(latent, ids_restore),
                                  patchify(sobel_magnitude(x.float()), p), mask)
        return {"loss": image + self.gradient_weight * gradient, "image_loss": image.detach(),
                "gradient_loss": gradient.detach()}

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.views(batch.inputs)  # (B, C, S, S), normalized
        masks = random_masking(x.shape[0], self.backbone.num_patches, self.mask_ratio, x.device)
        return self.losses(x, *masks)
