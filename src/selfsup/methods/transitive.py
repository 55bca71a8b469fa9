"""Transitive invariance (Wang, He and Gupta 2017, "Transitive Invariance for Self-supervised
Visual Representation Learning"), a small faithful version on images instead of video tracks.

The paper builds a graph of object instances with two kinds of edges -- intra-instance (one
object seen from another viewpoint, from tracking) and inter-instance (different objects that
look alike, from clustering a first self-supervised network's features) -- and trains a
Triplet-Siamese network on the pairs the graph implies by transitivity: if A - B is an
inter-instance edge and B - B' an intra-instance one, A and B' make a positive pair that differs
in both instance and viewpoint. Here:

- intra-instance edges are the two augmented views of one image;
- inter-instance edges are mutual k-nearest neighbours among the training images in the current
  model's embedding space (the projector's output, the space the loss shapes), found without
  labels and refreshed every epoch on the fly (``methods.neighbours.MutualNeighbours``: a memory
  bank written with ``batch.indices`` at every step, a neighbour table rebuilt from it once an
  epoch's worth of samples has passed; all of it method state, nothing in the trainer);
- transitive positives pair a view of A with the *other* view of B for every mutual-neighbour
  pair A, B in the batch (both views are i.i.d. augmentations, so A with B's same-index view,
  the plain inter-instance pair, has the same distribution and is not added again);
- the loss is the paper's ranking loss with cosine distance and margin 0.5 over those positives,
  with hard negatives taken from outside the anchor's neighbourhood
  (``objectives.CosineTriplet``).

Pairs are found only among the samples of a batch, so their number per batch is about
B^2 d / N for mean mutual degree d: ~25 for digits at B = 128, fewer than one for
Fashion-MNIST at B = 256 -- on a large set with random batches the method is mostly the
intra-instance triplet loss. ``transitive_pairs`` logs the count and ``neighbour_purity`` the
fraction of all mined edges whose two images share a label, when the source has labels (used for
that report only).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import distributed
from ..data.batch import Batch
from ..data.spec import DataSpec
from ..objectives import CosineTriplet
from ..views import ViewConfig
from .base import Method, Recipe
from .heads import projection_mlp
from .neighbours import MutualNeighbours
from .registry import register


@register("transitive", family="metric learning",
          paper="Wang, He and Gupta 2017, Transitive Invariance for Self-supervised Visual "
                "Representation Learning")
class Transitive(Method):
    # Paper: VGG16 Triplet-Siamese network, SGD, margin 0.5, cosine distance, hard negatives.
    # Here: SimCLR's CPU recipe (AdamW, views, projector) so the two compare like for like.
    recipe = Recipe(optimizer="adamw", lr=2e-3, weight_decay=0.05, warmup_fraction=0.05,
                    views=ViewConfig(crop_scale=(0.5, 1.0), crop_ratio=0.72))

    def __init__(self, backbone: nn.Module, views: nn.Module, data: DataSpec,
                 margin: float = 0.5, hard_negatives: int = 4, neighbours: int = 5,
                 refresh_epochs: float = 1.0, proj_hidden_dim: int = 512, proj_dim: int = 128):
        super().__init__(backbone, views, data)
        self.projector = projection_mlp(backbone.dim, proj_hidden_dim, proj_dim)
        self.objective = CosineTriplet(margin=margin, hard_negatives=hard_negatives)
        self.neighbours = MutualNeighbours(data.num_samples, proj_dim, k=neighbours,
                                           refresh_epochs=refresh_epochs)

    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x1, x2 = self.views(batch.inputs)  # (B, C, S, S) each
        z1 = self.projector(self.encode(x1))  # (B, proj_dim)
        z2 = self.projector(self.encode(x2))
        columns = distributed.gather_with_grad(batch.indices)  # (B_global,) dataset indices
        mutual, one_sided = self.neighbours.edges(batch.indices, columns)  # (B, B_global) each
        loss = self.objective(z1, z2, mutual, ignore=one_sided)
        out = {"loss": loss, "transitive_pairs": mutual.sum().float()}
        if batch.labels is not None:
            # labels only report on the mined pairs; unlabeled samples (-1) are left out
            others = distributed.gather_with_grad(batch.labels)
            known = mutual & (batch.labels[:, None] >= 0) & (others[None, :] >= 0)
            if known.any():
                same = batch.labels[:, None] == others[None, :]
                out["batch_pair_purity"] = same[known].float().mean()
        # the bank keeps the mean of the two views' embeddings, written after the edges are read
        embedding = nn.functional.normalize(z1.detach(), dim=1) + nn.functional.normalize(
            z2.detach(), dim=1)
        self.neighbours.update(embedding, batch.indices, batch.labels)
        if not torch.isnan(self.neighbours.purity):
            out["neighbour_purity"] = self.neighbours.purity.clone()
        return out
