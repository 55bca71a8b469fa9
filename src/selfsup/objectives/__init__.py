"""Self-supervised losses as small modules, one family per file, each a paper's equation."""

from __future__ import annotations

from torch import nn

from .contrastive import NTXent
from .redundancy import BarlowTwins

# Name -> loss class, so callers and tests can pick an objective by the name a config uses.
OBJECTIVES: dict[str, type[nn.Module]] = {"nt_xent": NTXent, "barlow_twins": BarlowTwins}

__all__ = ["OBJECTIVES", "BarlowTwins", "NTXent"]
