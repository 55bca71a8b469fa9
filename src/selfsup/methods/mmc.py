"""MMC (Wu et al. 2023, "Masked Momentum Contrastive Learning for Zero-shot Semantic
Understanding").

Three parts, as the abstract names them: masked image modelling for local features, momentum
self-distillation from global to local features, and a global contrast between views. No code
is public (none of the authors' was found when this was written), so this follows the paper's
description over SiT's pieces (the same group's earlier method; `selfsup.methods.sit`), and
every choice the paper leaves open is ours::

    L = ctr(s_cls(x~1), t_cls(x2)) + ctr(s_cls(x~2), t_cls(x1))           global contrast
        + lambda_rec * L1(rec(x~), x; corrupted pixels)                     masked modelling
        + lambda_dist * sum_v D(s_patch(x~v), t_patch(xv); corruption)      self-distillation

- masked modelling: SiT's group masked model learning, unchanged (`gmml_views`, official
  defaults: half of each view corrupted by zeros, or 30% by blocks of another image for half
  the images; SiT's reconstruction head and L1 on the corrupted pixels, weight 1).
- global contrast: SiT's, unchanged: MoCo v3's loss (temperature 0.2) between each corrupted
  view's projected class token and the momentum teacher's projection of the other clean view.
- self-distillation (`MaskedTokenDistillation`, weight 1): the teacher sees the clean views; its
  projected patch tokens are the targets of the student's projected patch tokens of the
  corrupted view, position by position, by BYOL's cosine distance. Every patch token is
  distilled, weighted by the fraction of its pixels the corruption touched (`patch_fraction`:
  the corrupted patches when blocks align to patches), as iBOT distils masked patches. The
  class token and the patch tokens share one projector, so the space the global contrast
  shapes is the space the patch tokens are distilled in: the transfer "from global to local
  features". The projector runs on class tokens and patch tokens separately (its batch norms
  see each on their own), so with ``distillation_weight=0`` MMC is SiT step for step.
- teacher: one EMA copy of backbone and projector (SiT's), momentum 0.99 -> 1 on a cosine.

The paper's own evaluation, zero-shot segmentation by a prompt patch, is the ``prompt_seg``
protocol (`selfsup.evaluate.prompt_seg`). The small-image deviations are SiT's (its docstring).
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.spec import DataSpec
from ..objectives.masked import MaskedTokenDistillation
from ..views.masking import patch_fraction, unpatchify
from .registry import register
from .sit import SiT


@register("mmc", family="masked image modelling",
          paper="Wu et al. 2023, Masked Momentum Contrastive Learning for Zero-shot Semantic "
                "Understanding")
class MMC(SiT):
    recipe = SiT.recipe

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 corruption: str = "zeros", drop_ratio: float = 0.5, replace_ratio: float = 0.3,
                 replace_p: float = 0.5, align: int = 1, reconstruction_weight: float = 1.0,
                 distillation_weight: float = 1.0, temperature: float = 0.2,
                 momentum: float = 0.99, proj_hidden_dim: int = 512, proj_dim: int = 256):
        super().__init__(backbone, views, data, variant="momentum", corruption=corruption,
                         drop_ratio=drop_ratio, replace_ratio=replace_ratio, replace_p=replace_p,
                         align=align, reconstruction_weight=reconstruction_weight,
                         temperature=temperature, momentum=momentum,
                         proj_hidden_dim=proj_hidden_dim, proj_dim=proj_dim)
        if distillation_weight < 0:
            raise ValueError(f"distillation_weight must be >= 0, got {distillation_weight}")
        self.distillation_weight = distillation_weight
        self.distillation = MaskedTokenDistillation()

    def _global(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, 0] if self.backbone.pool == "cls" else tokens[:, 1:].mean(1)

    def _local(self, projector: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
        """Patch tokens (N, 1 + L, dim) -> projected patch tokens (N, L, proj_dim)."""
        return projector(tokens[:, 1:].flatten(0, 1)).unflatten(0, tokens.shape[:1] + (-1,))

    def losses(self, clean: torch.Tensor, corrupted: torch.Tensor, mask: torch.Tensor,
               turns: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Both views stacked, view 1 first: clean and corrupted (2B, C, S, S), the corrupted
        pixels ``mask`` (2B, S, S)."""
        tokens = self.backbone.tokens(corrupted)  # (2B, 1 + L, dim)
        q1, q2 = self.projector(self._global(tokens)).chunk(2)  # (B, proj_dim) each
        recon = unpatchify(self.rec_head(tokens[:, 1:]), self.backbone.patch_size,
                           self.channels)  # (2B, C, S, S)
        rec = self.reconstruction(recon, clean, mask)
        backbone_t, projector_t = self.teacher.module
        with torch.no_grad():  # the teacher sees the clean views
            tokens_t = backbone_t.tokens(clean)
            k1, k2 = projector_t(self._global(tokens_t)).chunk(2)
            local_t = self._local(projector_t, tokens_t)  # (2B, L, proj_dim)
        con = self.contrast(q1, k2) + self.contrast(q2, k1)
        weights = patch_fraction(mask, self.backbone.patch_size)  # (2B, L)
        dist = self.distillation(self._local(self.projector, tokens), local_t, weights)
        loss = con + self.reconstruction_weight * rec + self.distillation_weight * dist
        return {"loss": loss, "contrastive_loss": con.detach(),
                "reconstruction_loss": rec.detach(), "distillation_loss": dist.detach()}
