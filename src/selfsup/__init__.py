"""selfsup: self-supervised representation learning that is fast, correct and honest."""

from .api import Run, embed, evaluate, finetune, load, pretrain

__version__ = "0.1.0"
__all__ = ["Run", "__version__", "embed", "evaluate", "finetune", "load", "pretrain"]
