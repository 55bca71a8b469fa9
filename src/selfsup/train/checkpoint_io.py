"""Checkpoint I/O that never leaves a torn file and never unpickles code."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

# Seconds to wait between writing the temp file and renaming it. Tests set it to kill a run in
# the middle of a checkpoint write; it is never set otherwise.
PAUSE_ENV = "SELFSUP_TEST_CHECKPOINT_PAUSE_S"


def atomic_write(path: str | Path, write) -> None:
    """Write through ``write(file_object)`` to a temp file beside ``path``, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if os.environ.get(PAUSE_ENV):
            time.sleep(float(os.environ[PAUSE_ENV]))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Delete the temp files a killed ``atomic_write`` of ``path`` left beside it."""
    path = Path(path)
    stale = list(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


class CheckpointRefused(RuntimeError):
    """A checkpoint holds something other than tensors and plain data."""


def load_checkpoint_safely(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError with a long explanation
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise CheckpointRefused(
                f"refusing to load {path}: it holds pickled objects that could run code "
                "(only tensors and plain data are loaded)") from None
        raise


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic_write(path, lambda f: torch.save(checkpoint, f))

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return load_checkpoint_safely(path, map_location or "cpu")
