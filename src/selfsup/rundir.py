"""The run directory's file names, atomic writes and safe checkpoint loading.

A low module: anything in selfsup may import it, it imports nothing of selfsup.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch

# Seconds to wait between writing the temp file and renaming it. Tests set it to kill a run in
# the middle of a checkpoint write; it is never set otherwise.
PAUSE_ENV = "SELFSUP_TEST_CHECKPOINT_PAUSE_S"


@dataclass(frozen=True)
class RunDir:
    """One run's directory and the names of the files it holds (DESIGN.md, "A run directory
    is the unit of record")."""

    path: Path

    def __init__(self, path: str | Path):
        object.__setattr__(self, "path", Path(path))

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def best_meta(self) -> Path:
        return self.checkpoints / "best.json"

    @property
    def constant(self) -> Path:
        """Infinite schedule: the weights before the anneal, which ``--init-from`` continues."""
        return self.checkpoints / "constant.ckpt"

    @property
    def weights(self) -> Path:
        return self.path / "encoder.safetensors"

    @property
    def meta(self) -> Path:
        return self.path / "encoder.json"

    @property
    def eval(self) -> Path:
        return self.path / "eval.json"

    @property
    def online(self) -> Path:
        """With --ema the exported encoder is the average; the trained (online) weights are
        kept here as a run directory of their own (encoder.safetensors + encoder.json)."""
        return self.path / "online-encoder"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    def eval_for(self, tag: str) -> Path:
        """Results on other data or with another preprocessing: ``eval-<tag>.json``."""
        return self.path / f"eval-{tag}.json"

    def checkpoint_of_export(self, selected_by: str | None) -> Path:
        """The checkpoint the exported encoder came from."""
        return self.best if selected_by == "rankme" else self.last


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
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


def atomic_write_text(path: str | Path, text: str, mode: int = 0o644) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))
    Path(path).chmod(mode)  # mkstemp creates 0600; a run's records are for everyone to read


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Delete the temp files a killed ``atomic_write`` of ``path`` left beside it."""
    path = Path(path)
    stale = list(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


class DamagedFile(Exception):
    """A run file is truncated or corrupt; the message names it and what is left to use."""


class CheckpointRefused(RuntimeError):
    """A checkpoint holds something other than tensors and plain data."""


def load_checkpoint_safely(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint's tensors and plain data (``weights_only=True``): `CheckpointRefused` for
    one that would unpickle code, `DamagedFile` for a truncated or corrupt one."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as e:  # torch raises UnpicklingError with a long explanation
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise CheckpointRefused(
                f"refusing to load {path}: it holds pickled objects that could run code "
                "(only tensors and plain data are loaded)") from None
        # truncation shows as RuntimeError (no zip directory), OSError, EOFError or KeyError
        detail = (str(e).splitlines() or [""])[0].split(". ")[0][:120]
        raise DamagedFile(f"{path} is damaged: truncated or not a checkpoint "
                          f"({type(e).__name__}: {detail})") from None


def checkpoint_step(path: str | Path) -> int | None:
    """The step a checkpoint was written at; None when it does not load."""
    try:
        return int(load_checkpoint_safely(path).get("global_step", 0))
    except (DamagedFile, CheckpointRefused, OSError):
        return None
