"""ScatSimCLR (Kinakh et al. 2021, "ScatSimCLR: self-supervised contrastive learning with pretext
task regularization for small-scale datasets").

SimCLR whose encoder is a fixed scattering transform with a small trainable adapter (the
``scatnet`` backbone), trained on NT-Xent (temperature 0.5) plus lambda = 0.3 times a pretext
loss that predicts an augmentation's parameters from the backbone features: the quarter turn of a
rotated view (4 classes) or the permutation of a 3 x 3 jigsaw (the official ``pretext_task_
trainer.py``: ``loss_contrastive + lambda * loss_pretext``, lambda 0.3 in ``config_pretext.yaml``).

Departures from the official code, for cost, each an estimate of the same loss:
- rotation: one random quarter turn per image of the first view (B extra images through the
  encoder) instead of all four turns of a fresh augmentation (4B); the cross-entropy over a
  uniformly drawn turn is an unbiased estimate of the official mean over the four;
- jigsaw: tiles cut from the first view and resized to its side, without the official second
  augmentation of each tile (9B extra images either way), and heads a quarter as wide (per tile
  dim -> 128, then 9 x 128 -> 512 -> permutations, where the official has 512 and 4096);
- the permutation set is generated (``views.pretext.maximal_hamming_permutations``: 30
  permutations of minimum Hamming distance 7 by greedy farthest-point selection), since the
  official ``permutations_35.npy`` is not published.
``pretext`` picks the task as the official trainer does (one at a time: rotation by default, as
jigsaw costs 9 encoder passes per image against rotation's 1), ``"rotation+jigsaw"`` adds both and
``"none"`` leaves plain SimCLR on the scattering encoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.batch import Batch
from ..data.spec import DataSpec
from ..objectives import NTXent
from ..views import ViewConfig
from ..views.pretext import jigsaw_tiles, maximal_hamming_permutations, rotate_quarter_turns
from .base import Method, Recipe
from .heads import projection_mlp
from .registry import register

PRETEXTS = ("rotation", "jigsaw", "rotation+jigsaw", "none")


@register("scatsimclr", family="contrastive",
          paper="Kinakh et al. 2021, ScatSimCLR: self-supervised contrastive learning with "
                "pretext task regularization for small-scale datasets",
          status="experimental")  # the learning guard (selfsup/guard.py) measures the status
class ScatSimCLR(Method):
    # Paper/official code: Adam lr 3e-4, ScatNet J = 2, L = 8 (16 for its best STL-10/CIFAR-20
    # runs), full-size crops. Here: SimCLR's CPU recipe (AdamW, crops of scale >= 0.5) for a
    # like-for-like comparison, but full-size crops, as the paper trains (and 28 px and 8 px are
    # multiples of the scattering's 2^J = 4 where 0.72 x the side is not).
    recipe = Recipe(optimizer="adamw", lr=2e-3, weight_decay=0.05, warmup_fraction=0.05,
                    views=ViewConfig(crop_scale=(0.5, 1.0), crop_ratio=1.0), backbone="scatnet")

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 temperature: float = 0.5, pretext: str = "rotation", pretext_weight: float = 0.3,
                 jigsaw_permutations: int = 30, proj_hidden_dim: int = 512, proj_dim: int = 128):
        super().__init__(backbone, views, data)
        if pretext not in PRETEXTS:
            raise ValueError(f"unknown pretext {pretext!r}; valid: {', '.join(PRETEXTS)}")
        if pretext_weight < 0:
            raise ValueError(f"pretext_weight must be >= 0, got {pretext_weight}")
        self.projector = projection_mlp(backbone.dim, proj_hidden_dim, proj_dim)
        self.objective = NTXent(temperature=temperature)
        self.pretext, self.pretext_weight = pretext, pretext_weight
        dim = backbone.dim
        if "rotation" in pretext:
            # the official rotation head: h -> 512 -> 128 -> 4, ReLU and dropout 0.5 between
            self.rotation_head = nn.Sequential(
                nn.Linear(dim, 512), nn.ReLU(inplace=True), nn.Dropout(0.5),
                nn.Linear(512, 128), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(128, 4))
        if "jigsaw" in pretext:
            self.register_buffer("permutations", maximal_hamming_permutations(
                jigsaw_permutations), persistent=False)
            self.tile_head = nn.Sequential(nn.Linear(dim, 128), nn.ReLU(inplace=True),
                                           nn.Dropout(0.5))
            self.jigsaw_head = nn.Sequential(nn.Linear(9 * 128, 512), nn.ReLU(inplace=True),
                                             nn.Dropout(0.5), nn.Linear(512, jigsaw_permutations))

    def rotation_loss(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        turns = torch.randint(0, 4, (x.shape[0],), device=x.device)  # (B,)
        logits = self.rotation_head(self.encode(rotate_quarter_turns(x, turns)))  # (B, 4)
        return F.cross_entropy(logits, turns), (logits.argmax(1) == turns).float().mean()

    def jigsaw_loss(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, p = x.shape[0], len(self.permutations)
        labels = torch.randint(0, p, (b,), device=x.device)  # (B,)
        tiles = jigsaw_tiles(x, self.permutations, labels)  # (B, 9, C, S, S)
        h = self.tile_head(self.encode(tiles.flatten(0, 1)))  # (9B, 128)
        logits = self.jigsaw_head(h.reshape(b, -1))  # (B, P)
        return F.cross_entropy(logits, labels), (logits.argmax(1) == labels).float().mean()

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x1, x2 = self.views(batch.inputs)  # (B, C, S, S) each
        z1 = self.projector(self.encode(x1))  # (B, proj_dim)
        z2 = self.projector(self.encode(x2))
        contrastive = self.objective(z1, z2)
        out = {"loss_contrastive": contrastive.detach()}
        loss = contrastive
        for task, fn in (("rotation", self.rotation_loss), ("jigsaw", self.jigsaw_loss)):
            if task in self.pretext:
                task_loss, accuracy = fn(x1)
                loss = loss + self.pretext_weight * task_loss
                out[f"loss_{task}"], out[f"{task}_acc"] = task_loss.detach(), accuracy
        return {"loss": loss, **out}
