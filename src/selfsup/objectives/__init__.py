"""Self-supervised losses as small modules, one family per file, each a paper's equation."""

from __future__ import annotations

from torch import nn

from .contrastive import DCL, DCLW, NTXent, SupCon
from .queue_contrastive import MoCHi, QueueInfoNCE
from .redundancy import BarlowTwins
from .robust_contrastive import ISogCLR
from .sorting import GroCo
from .triplet import CosineTriplet

# Name -> two-view loss class ``loss(z1, z2)``, so callers and tests can pick an objective by
# the name a config uses. The queue losses (QueueInfoNCE, MoCHi) and ISogCLR take more inputs
# (a queue, sample indices) and are tested on their own.
OBJECTIVES: dict[str, type[nn.Module]] = {
    "nt_xent": NTXent, "barlow_twins": BarlowTwins, "dcl": DCL, "dclw": DCLW, "supcon": SupCon,
    "groco": GroCo, "cosine_triplet": CosineTriplet,
}

__all__ = ["DCL", "DCLW", "ISogCLR", "OBJECTIVES", "BarlowTwins", "CosineTriplet", "GroCo",
           "MoCHi", "NTXent", "QueueInfoNCE", "SupCon"]
