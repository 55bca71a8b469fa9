"""What the hardware can do. A low module: anything in selfsup may import it."""

from __future__ import annotations

import torch


def has_bf16() -> bool:
    """True where bf16 autocast is fast: CUDA with bf16, or a CPU with AVX-512-BF16/AMX."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
