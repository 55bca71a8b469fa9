"""SiT (Atito et al. 2021, "SiT: Self-supervised vIsion Transformer").

Group masked model learning (GMML): random blocks of each view are corrupted (zeros, noise, a
block of the same image elsewhere, or the same block of another image), and the ViT, which
sees only the corrupted view, reconstructs the clean one from its patch tokens; the error
counts on the corrupted pixels only. Beside it, a contrastive term on the class token: as the
authors' current code (Sara-Ahmed/SiT main.py), each corrupted view's projection against the
other clean view's projection by a momentum teacher, MoCo v3's loss::

    L = ctr(s(x~1), t(x2)) + ctr(s(x~2), t(x1)) + lambda * L1(rec(x~), x; corrupted pixels)

``variant="rotation"`` is the paper's first version instead: each view is turned by a random
quarter turn before it is corrupted, and three tasks share one learned uncertainty weighting
(`UncertaintyWeighting`): rotation prediction (4-way cross-entropy), SimCLR's NT-Xent between
the two corrupted views (temperature 0.5) and the same reconstruction; no teacher.

Follows the official code (main.py ``train_SiT``, ``SimCLR``, ``FullPipline``; vision_transformer
``CLSHead``, ``RECHead``; datasets_utils ``GMML_drop_rand_patches``, ``GMML_replace_list``), with
these changes:

- corruption: `selfsup.views.corruption.gmml_views`, batched; its docstring names the two
  changes to the block sampler that 8 px images force. Official defaults kept: half of each
  view corrupted by zeros, or, for half the images, 30% by blocks of another image; blocks not
  aligned to patches (``align=1``).
- heads: the projection head is `projection_mlp` (3 layers, BN, 512 wide, 256 out, last BN
  without affine), not ``CLSHead``'s 4096 wide; the reconstruction head keeps ``RECHead``'s
  three Linear-GELU layers, then a per-patch linear map to pixels: the official transposed
  convolution with kernel = stride = patch size is that map, with a bias per channel where
  this one has a bias per pixel.
- views: DINO's two global crops (blur 1.0 and 0.1, solarization 0.2 on the second) become
  one symmetric recipe: crops at scale (0.2, 1), flips, the official jitter strength, no blur
  (SimCLR drops it for 32 px images) and solarization 0.1 on each.
- momentum 0.99 -> 1 on a cosine (official 0.996): a run of a few thousand steps cannot wait
  for a slower teacher, as in MoCo here. No drop path, fixed weight decay, and no gradient
  clipping: the official code clips each parameter's gradient to norm 3.0 on its own (DINO's
  ``clip_gradients``), which the recipe's global-norm ``grad_clip`` would not reproduce.
  ``reconstruction_weight`` keeps the code's 1 (its README suggests 5 on small datasets).
- rotation variant: the paper's ViT has a rotation token and a contrastive token; the library's
  ViT has one class token, so the contrastive head reads it (the exported feature) and the
  rotation head reads the mean patch token. Its heads are `projection_mlp` too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.batch import Batch
from ..data.spec import DataSpec
from ..objectives import NTXent
from ..objectives.contrastive import MomentumInfoNCE
from ..objectives.masked import CorruptedPixelL1
from ..objectives.multitask import UncertaintyWeighting
from ..views import ViewConfig
from ..views.corruption import CORRUPTIONS, gmml_views
from ..views.masking import unpatchify
from ..views.pretext import rotate_quarter_turns
from .base import Method, Recipe
from .heads import projection_mlp
from .momentum import MomentumTeacher, cosine_momentum
from .registry import register

VARIANTS = ("momentum", "rotation")


@register("sit", family="masked image modelling",
          paper="Atito et al. 2021, SiT: Self-supervised vIsion Transformer")
class SiT(Method):
    # Official: AdamW lr 5e-4 x B/256 for 800 epochs, wd 0.04 -> 0.1, DINO's two global crops.
    # As MAE here, a higher lr for budgets of minutes; SimCLR-style views for small images.
    recipe = Recipe(optimizer="adamw", lr=1.5e-3, weight_decay=0.04, warmup_fraction=0.05,
                    backbone="vit_tiny",
                    views=ViewConfig(kind="two_crop", crop_scale=(0.2, 1.0), crop_ratio=1.0,
                                     jitter_strength=0.5, solarize_p=0.1))

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 variant: str = "momentum", corruption: str = "zeros", drop_ratio: float = 0.5,
                 replace_ratio: float = 0.3, replace_p: float = 0.5, align: int = 1,
                 reconstruction_weight: float = 1.0, temperature: float | None = None,
                 momentum: float = 0.99, proj_hidden_dim: int = 512, proj_dim: int = 256):
        super().__init__(backbone, views, data)
        if not callable(getattr(backbone, "tokens", None)):
            raise ValueError("sit needs a token backbone (vit_tiny, vit_small), got "
                             f"{type(backbone).__name__}")
        if variant not in VARIANTS:
            raise ValueError(f"unknown sit variant {variant!r}; valid: {', '.join(VARIANTS)}")
        if corruption not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {corruption!r}; valid: {CORRUPTIONS}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.variant, self.corruption, self.align = variant, corruption, align
        self.drop_ratio, self.replace_ratio, self.replace_p = drop_ratio, replace_ratio, replace_p
        self.reconstruction_weight, self.base_momentum = reconstruction_weight, momentum
        d, p = backbone.dim, backbone.patch_size
        self.channels = backbone.preprocessing.channels
        self.projector = projection_mlp(d, proj_hidden_dim, proj_dim, num_layers=3, last_bn=True)
        self.rec_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d), nn.GELU(),
                                      nn.Linear(d, d), nn.GELU(),
                                      nn.Linear(d, p * p * self.channels))
        self.reconstruction = CorruptedPixelL1()
        if variant == "momentum":
            self.teacher = MomentumTeacher(nn.Sequential(backbone, self.projector))
            self.contrast = MomentumInfoNCE(temperature or 0.2)
        else:
            self.rotation_head = projection_mlp(d, proj_hidden_dim, 4, num_layers=3)
            self.contrast = NTXent(temperature or 0.5)
            self.weighting = UncertaintyWeighting(3)

    def corrupt(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One view (B, C, S, S) -> corrupted view, corrupted-pixel mask (B, S, S)."""
        return gmml_views(x, self.drop_ratio, self.corruption, self.replace_ratio,
                          self.replace_p, self.align)

    def losses(self, clean: torch.Tensor, corrupted: torch.Tensor, mask: torch.Tensor,
               turns: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Both views stacked, view 1 first: clean and corrupted (2B, C, S, S), mask (2B, S, S),
        and the rotation variant's quarter turns (2B,)."""
        tokens = self.backbone.tokens(corrupted)  # (2B, 1 + L, dim)
        pooled = tokens[:, 0] if self.backbone.pool == "cls" else tokens[:, 1:].mean(1)
        q1, q2 = self.projector(pooled).chunk(2)  # (B, proj_dim) each
        recon = unpatchify(self.rec_head(tokens[:, 1:]), self.backbone.patch_size,
                           self.channels)  # (2B, C, S, S)
        rec = self.reconstruction(recon, clean, mask)
        if self.variant == "momentum":
            k1, k2 = self.teacher(clean).chunk(2)  # the teacher sees the clean views
            con = self.contrast(q1, k2) + self.contrast(q2, k1)
            out = {"loss": con + self.reconstruction_weight * rec}
        else:
            rot = F.cross_entropy(self.rotation_head(tokens[:, 1:].mean(1)), turns)
            con = self.contrast(q1, q2)
            out = {"loss": self.weighting([rot, con, rec]), "rotation_loss": rot.detach()}
        return out | {"contrastive_loss": con.detach(), "reconstruction_loss": rec.detach()}

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        views = self.views(batch.inputs)  # two (B, C, S, S), normalized
        turns = None
        if self.variant == "rotation":
            turns = torch.randint(0, 4, (2 * len(views[0]),), device=views[0].device)  # (2B,)
            views = rotate_quarter_turns(torch.cat(views), turns).chunk(2)
        corrupted, masks = zip(*(self.corrupt(v) for v in views), strict=True)
        return self.losses(torch.cat(views), torch.cat(corrupted), torch.cat(masks), turns)

    def after_optimizer_step(self, progress: float) -> None:
        if self.variant == "momentum":
            self.teacher.update(nn.Sequential(self.backbone, self.projector),
                                cosine_momentum(progress, self.base_momentum))
