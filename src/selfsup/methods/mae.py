"""MAE (He et al. 2021, "Masked Autoencoders Are Scalable Vision Learners").

Mask a large random subset of the patches (75%), encode only the visible ones with a ViT, let
a small decoder fill in mask tokens, and regress the missing pixels (normalized per patch).
The encoder, without the decoder, is the product.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.batch import Batch
from ..data.spec import DataSpec
from ..objectives.masked import MaskedReconstruction
from ..views import ViewConfig
from ..views.masking import patchify, random_masking, unpatchify
from .base import Method, Recipe
from .decoder import MaskedDecoder
from .registry import register


@register("mae", family="masked image modelling",
          paper="He et al. 2021, Masked Autoencoders Are Scalable Vision Learners",
          status="collapses")  # the learning guard (selfsup/guard.py) measures the status
class MAE(Method):
    # Paper (appendix A.1): AdamW, betas (0.9, 0.95), wd 0.05, base lr 1.5e-4 x B/256, 40
    # warmup epochs of 800-1600, random-resized crops at scale (0.2, 1) and flips, no colour
    # jitter. That lr is tuned for 800+ ImageNet epochs; a 10-30 minute CPU budget is a few
    # thousand steps, so we start 10x higher (1.5e-3 per 256, still under the paper's effective
    # 2.4e-3 at batch 4096) with the same 5% warmup, to be measured.
    # The encoder's feature is the mean of its patch tokens, as the official fine-tuning
    # (main_finetune.py: global_pool on by default; models_vit.py pools the patch tokens without
    # CLS): no loss here ever reads CLS. Measured on one digits run (2m, benchmarks/RESULTS.md):
    # fine-tuned at 10% labels, CLS 0.10 (chance), mean 0.26; kNN 0.46 -> 0.51.
    recipe = Recipe(optimizer="adamw", lr=1.5e-3, weight_decay=0.05, warmup_fraction=0.05,
                    betas=(0.9, 0.95), backbone="vit_tiny", backbone_args={"pool": "mean"},
                    views=ViewConfig(kind="one_crop", crop_scale=(0.2, 1.0), crop_ratio=1.0,
                                     jitter_p=0.0, grayscale_p=0.0))

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 mask_ratio: float = 0.75, norm_pix: bool = True,
                 # The paper's decoder (512 wide, 8 blocks) decodes 196 patches at ImageNet
                 # scale; small images have 49-64, and its ablation (Table 1a) shows 1-2 blocks
                 # suffice when the encoder is fine-tuned. 128 wide x 2 blocks costs a fraction
                 # of a vit_tiny encoder step.
                 decoder_dim: int = 128, decoder_depth: int = 2, decoder_heads: int = 4):
        super().__init__(backbone, views, data)
        if not callable(getattr(backbone, "tokens", None)):
            raise ValueError("mae needs a token backbone (vit_tiny, vit_small), got "
                             f"{type(backbone).__name__}")
        self.mask_ratio = mask_ratio
        # fail early on a bad ratio (zero noise: no draw from the global generator)
        n = backbone.num_patches
        random_masking(1, n, mask_ratio, noise=torch.zeros(1, n))
        self.patch_size = backbone.patch_size
        self.channels = backbone.preprocessing.channels
        self.decoder = MaskedDecoder(backbone.num_patches, backbone.grid_size, backbone.dim,
                                     decoder_dim, decoder_depth, decoder_heads,
                                     out_dim=self.patch_size**2 * self.channels)
        self.objective = MaskedReconstruction(norm_pix=norm_pix)

    def _reconstruct(self, x: torch.Tensor, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized images (B, C, S, S) -> predicted patches (B, L, p*p*C), mask (B, L)."""
        ids_keep, mask, ids_restore = random_masking(x.shape[0], self.backbone.num_patches,
                                                     self.mask_ratio, x.device, generator)
        latent = self.backbone.tokens(x, keep=ids_keep)  # (B, 1 + n_keep, dim)
        return self.decoder(latent, ids_restore), mask

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.views(batch.inputs)  # (B, C, S, S), normalized
        pred, mask = self._reconstruct(x)  # (B, L, p*p*C), (B, L)
        return {"loss": self.objective(pred, patchify(x, self.patch_size), mask)}

    @torch.no_grad()
    def reconstruction_examples(self, images: torch.Tensor, seed: int = 0
                                ) -> dict[str, torch.Tensor]:
        """For the report page: uint8 images (n, C, H, W) -> "original", "masked" (masked
        patches at the dataset mean) and "reconstruction" (the decoder's prediction on every
        patch, visible ones included, as the paper's figures show it), each float
        (n, C, S, S) in [0, 1]. With ``norm_pix`` the prediction is in per-patch normalized
        units; it is mapped back with each original patch's mean and variance, as the
        official demo does."""
        was_training = self.training
        self.eval()
        try:
            pre = self.backbone.preprocessing
            device = next(self.parameters()).device
            x = pre(images.to(device))  # (n, C, S, S), normalized
            gen = torch.Generator(device=device).manual_seed(seed)
            pred, mask = self._reconstruct(x, gen)
            pred, p, c = pred.float(), self.patch_size, self.channels
            if self.objective.norm_pix:
                target = patchify(x, p)  # (n, L, p*p*C)
                mean = target.mean(dim=-1, keepdim=True)
                var = target.var(dim=-1, keepdim=True)
                pred = pred * (var + self.objective.eps) ** 0.5 + mean
            recon = unpatchify(pred, p, c)  # (n, C, S, S)
            m = unpatchify(mask[..., None].expand(-1, -1, p * p * c), p, c)  # 1 = masked
            mean_px = torch.tensor(pre.mean, device=device).view(1, -1, 1, 1)
            std_px = torch.tensor(pre.std, device=device).view(1, -1, 1, 1)

            def unnormalize(t: torch.Tensor) -> torch.Tensor:
                return (t * std_px + mean_px).clamp(0, 1)

            return {"original": unnormalize(x), "masked": unnormalize(x * (1 - m)),
                    "reconstruction": unnormalize(recon)}
        finally:
            self.train(was_training)
