"""The order of the training data and the random streams, saved so a resumed run replays them.

Lightning restores the model, optimizer and step counters from a checkpoint, but a plain
``DataLoader`` restarts its shuffle and the global RNG is not saved at all. ``ShardedShuffle``
makes each epoch's order a function of (seed, epoch), split across ranks so that the global
batch is the same for any number of processes; ``DataOrder`` saves the position in the epoch and
the RNG states in the checkpoint and puts them back before the first resumed step.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def world_and_rank() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class ShardedShuffle(Sampler[int]):
    """A reshuffle per epoch, cut into global batches; rank r takes rows ``[r b, (r + 1) b)`` of
    each. The union of the ranks' batches at step t is the single-process batch at step t.

    World size and rank are read when iterating, after DDP has started the process group.
    Incomplete global batches are dropped, as ``drop_last`` does.
    """

    def __init__(self, num_samples: int, per_rank_batch: int, seed: int = 0):
        self.num_samples = num_samples
        self.per_rank_batch = per_rank_batch
        self.seed = seed
        self.epoch = 0
        self.skip: tuple[int, int] | None = None  # (epoch, batches) already trained

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch."""
        self.epoch = epoch

    def steps_per_epoch(self) -> int:
        world, _ = world_and_rank()
        return self.num_samples // (self.per_rank_batch * world)

    def __len__(self) -> int:
        return self.steps_per_epoch() * self.per_rank_batch

    def order(self, epoch: int) -> torch.Tensor:
        """This rank's sample indices of ``epoch``: (steps, per_rank_batch)."""
        world, rank = world_and_rank()
        steps = self.steps_per_epoch()
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        used = steps * world * self.per_rank_batch
        perm = torch.randperm(self.num_samples, generator=gen)[:used]
        return perm.view(steps, world, self.per_rank_batch)[:, rank]

    def __iter__(self) -> Iterator[int]:
        start = 0
        if self.skip is not None and self.skip[0] == self.epoch:
            start = self.skip[1]
        self.skip = None
        yield from self.order(self.epoch)[start:].flatten().tolist()


def rng_state() -> dict[str, Any]:
    """The global random streams, as tensors and plain data (a ``weights_only`` load reads it)."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)),
                       "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                       "cached": float(np_state[4])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class DataOrder(L.Callback):
    """Saves (epoch, batches done in it, RNG states) with every checkpoint; restores them.

    It must come before the checkpointing callback, so a checkpoint written at the end of a
    batch already counts that batch. Every process draws the same augmentation stream (one seed
    for all), so rank 0's RNG state is every rank's.
    """

    def __init__(self, sampler: ShardedShuffle):
        self.sampler = sampler
        self.epoch = 0
        self.batches = 0
        self._pending_rng: dict[str, Any] | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epoch, self.batches = trainer.current_epoch, 0
        # Lightning sets the epoch of a DataLoader's sampler only; a streamed dataset (tar
        # shards) is the loader's order itself, and its workers start after this hook
        self.sampler.set_epoch(trainer.current_epoch)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # put the random streams back only now: between loading and the first step, Lightning
        # and the DataLoader draw from them, which the uninterrupted run did not do here
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1

    def state_dict(self) -> dict[str, Any]:
        state = {"epoch": self.epoch, "batches": self.batches, "rng": rng_state()}
        if hasattr(self.sampler, "state_dict"):  # a stream's layout (ranks x workers)
            state["sampler"] = self.sampler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.batches = int(state["epoch"]), int(state["batches"])
        mid_epoch = self.batches < self.sampler.steps_per_epoch()
        if mid_epoch:
            self.sampler.skip = (self.epoch, self.batches)
        # the resumed epoch's DataLoader iterator (and its workers) is made before Lightning
        # sets the sampler's epoch: set it now, or workers would replay epoch 0's order
        self.sampler.set_epoch(self.epoch if mid_epoch else self.epoch + 1)
        if "sampler" in state and hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state["sampler"])
        self._pending_rng = state["rng"]
