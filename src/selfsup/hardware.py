"""What the hardware can do. A low module: anything in selfsup may import it."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def has_bf16() -> bool:
    """True where bf16 autocast is fast: CUDA with bf16, or a CPU with AVX-512-BF16/AMX."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cache_dir() -> Path | None:
    """This machine's cache for selfsup (raw-input baselines, compiled kernels):
    ``$SELFSUP_CACHE``, default ``$XDG_CACHE_HOME/selfsup``, else ``~/.cache/selfsup``;
    None when ``SELFSUP_CACHE=off``."""
    where = os.environ.get("SELFSUP_CACHE")
    if where is not None:
        return None if where.lower() in ("off", "0", "") else Path(where).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "selfsup"


def use_compile_cache() -> Path | None:
    """Point inductor's on-disk caches (FX graphs, AOTAutograd, C++/Triton kernels) at
    ``cache_dir()/inductor``, unless the user chose a place (``TORCHINDUCTOR_CACHE_DIR``).

    Inductor's default, /tmp/torchinductor_<user>, goes with /tmp; here a second run on the same
    machine finds the first one's kernels. Lightning's import already writes that default into
    the environment, so only a value other than the default counts as the user's. Returns the
    directory in use (None: inductor's own, with ``SELFSUP_CACHE=off``)."""
    # a private helper, but the only statement of the default; it reads no state
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    given = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if given and os.path.abspath(given) != os.path.abspath(default_cache_dir()):
        return Path(given)
    root = cache_dir()
    if root is None:
        return None
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(root / "inductor")
    return root / "inductor"
