"""G-SimCLR (Chakraborty et al. 2020, "G-SimCLR: Self-Supervised Contrastive Learning with
Guided Projection via Pseudo Labelling").

SimCLR trained on guided batches: a denoising autoencoder and k-means give pseudo-labels, and no
two images of one pseudo-class share a batch (``selfsup.data.guided``), so fewer NT-Xent
negatives are images of the anchor's own class. Any method gets the same batches with
``--batch-sampler guided``.
"""

from __future__ import annotations

import dataclasses

from .registry import register
from .simclr import SimCLR


@register("gsimclr", family="contrastive",
          paper="Chakraborty et al. 2020, G-SimCLR: Self-Supervised Contrastive Learning with "
                "Guided Projection via Pseudo Labelling")
class GSimCLR(SimCLR):
    # SimCLR's recipe and loss; the paper changes only how batches are drawn.
    recipe = dataclasses.replace(SimCLR.recipe, batch_sampler="guided")
