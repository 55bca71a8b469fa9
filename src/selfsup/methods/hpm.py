"""HPM, hard patches mining (Wang et al. 2023, "Hard Patches Mining for Masked Image Modeling";
extended as "Bootstrap Masked Visual Modeling via Hard Patches Mining").

MAE plus a loss predictor: a second decoder branch predicts each patch's reconstruction error,
trained to rank the masked patches by their detached true errors (the relative, pairwise
binary cross-entropy form, weight 1). A momentum copy of encoder, decoder and predictor scores
the whole unmasked image, and the model masks what it expects to reconstruct worst: a fraction
alpha_t = 0.5 (t + 1) / T of the masked patches are the copy's highest-predicted-loss patches,
the rest random (easy to hard). The encoder is the product.

Follows the official code (Haochen-Wang409/HPM, models_mae_learn_loss.py
``MaskedAutoencoderViT`` and engine_pretrain.py ``train_one_epoch`` with ``--learning_loss
--relative``): the predictor is a branch of ``decoder_depth`` blocks, its own norm and a linear
to p*p*C values averaged per patch, reading the pixel decoder's input (shared embedding, mask
token and positions); the momentum copy is timm's ``ModelEma`` of the whole model. Choices:

- momentum: the official EMA goes linearly from 0.999 to 0.9999 over the first 100 of 800
  epochs, a horizon of 1k-10k steps at ImageNet scale. A run of a few thousand steps cannot wait
  for that, so the same ramp (over the first 1/8 of training) goes 0.99 -> 0.999 here; our
  `MomentumTeacher` averages parameters only (the model's buffers are fixed positions).
- t/T is the trainer's progress after the latest optimizer step, per step, not per epoch:
  alpha is 0.5 * progress. While alpha rounds to no hard patch (the official code draws a random
  mask then too) the copy's forward pass is skipped.
- target: per-patch normalized pixels, as MAE's default here, so the two compare on one target
  (the official script trains on raw pixels; ``norm_pix=False`` gives that).
- decoder width and depth as MAE's here (128 x 2; official 512 x 8, for 14x14 grids).
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.batch import Batch
from ..data.spec import DataSpec
from ..objectives.masked import RelativeLossPrediction
from ..views.masking import hard_patch_masking, patchify
from .decoder import DecoderBranch
from .mae import MAE
from .momentum import MomentumTeacher
from .registry import register

RAMP = 1 / 8  # the official momentum ramp: 100 of 800 epochs


@register("hpm", family="masked image modelling",
          paper="Wang et al. 2023, Hard Patches Mining for Masked Image Modeling",
          status="collapses")  # the learning guard (selfsup/guard.py) measures the status
class HPM(MAE):
    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 mask_ratio: float = 0.75, norm_pix: bool = True, decoder_dim: int = 128,
                 decoder_depth: int = 2, decoder_heads: int = 4, predictor_weight: float = 1.0,
                 max_hard_fraction: float = 0.5, momentum: float = 0.99,
                 final_momentum: float = 0.999):
        super().__init__(backbone, views, data, mask_ratio, norm_pix, decoder_dim,
                         decoder_depth, decoder_heads)
        if not 0.0 <= max_hard_fraction <= 1.0:
            raise ValueError(f"max_hard_fraction must be in [0, 1], got {max_hard_fraction}")
        if not 0.0 <= momentum <= final_momentum <= 1.0:
            raise ValueError(f"need 0 <= momentum <= final_momentum <= 1, got {momentum} and "
                             f"{final_momentum}")
        self.predictor_weight, self.max_hard_fraction = predictor_weight, max_hard_fraction
        self.momentum, self.final_momentum = momentum, final_momentum
        self.loss_predictor = DecoderBranch(decoder_dim, decoder_depth, decoder_heads,
                                            out_dim=self.patch_size**2 * self.channels)
        self.teacher = MomentumTeacher(self._student())
        self.relative = RelativeLossPrediction()
        self.register_buffer("progress", torch.zeros(()))  # t/T, restored on resume

    def _student(self) -> nn.ModuleList:
        return nn.ModuleList([self.backbone, self.decoder, self.loss_predictor])

    @torch.no_grad()
    def predicted_losses(self, x: torch.Tensor) -> torch.Tensor:
        """The momentum copy's predicted error of every patch of the unmasked images (B, L)."""
        encoder, decoder, predictor = self.teacher.module
        b, n = x.shape[0], self.backbone.num_patches
        in_order = torch.arange(n, device=x.device).expand(b, n)  # nothing masked
        return predictor(decoder.sequence(encoder.tokens(x), in_order))[:, 1:].mean(-1)

    def hard_masks(self, x: torch.Tensor, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Easy-to-hard masks for images (B, C, S, S): ids_keep, mask, ids_restore."""
        n = self.backbone.num_patches
        alpha = self.max_hard_fraction * float(self.progress)
        hard = int((n - int(n * (1 - self.mask_ratio))) * alpha)
        scores = (self.predicted_losses(x) if hard > 0 else
                  torch.zeros(x.shape[0], n, device=x.device))
        return hard_patch_masking(scores, self.mask_ratio, alpha, generator)

    def losses(self, x: torch.Tensor, ids_keep: torch.Tensor, mask: torch.Tensor,
               ids_restore: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss and its two terms for images (B, C, S, S) under a mask (`random_masking`'s
        three outputs)."""
        latent = self.backbone.tokens(x, keep=ids_keep)  # (B, 1 + n_keep, dim)
        pred = self.decoder(latent, ids_restore)  # (B, L, p*p*C)
        # the predictor branch reads the pixel blocks' input (official: loss_pred = x.clone())
        predicted = self.loss_predictor(self.decoder.sequence(latent, ids_restore))
        predicted = predicted[:, 1:].mean(-1)  # (B, L)
        errors = self.objective.per_patch(pred, patchify(x, self.patch_size))  # (B, L)
        masked = mask.bool()
        b = x.shape[0]
        errors, predicted = errors[masked].view(b, -1), predicted[masked].view(b, -1)
        recon = errors.mean()  # every sample masks the same count: MAE's masked mean
        ranking = self.relative(predicted, errors.detach())
        return {"loss": recon + self.predictor_weight * ranking,
                "reconstruction_loss": recon.detach(), "predictor_loss": ranking.detach()}

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.views(batch.inputs)  # (B, C, S, S), normalized
        return self.losses(x, *self.hard_masks(x))

    def after_optimizer_step(self, progress: float) -> None:
        self.progress.fill_(progress)
        m = self.momentum + (self.final_momentum - self.momentum) * min(progress / RAMP, 1.0)
        self.teacher.update(self._student(), m)
