"""Training batches streamed from tar shards: split across ranks and DataLoader workers without
overlap, reshuffled each epoch, resumable mid-epoch."""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..distributed import rank as this_rank
from ..distributed import world_size
from .shards import ShardSamples, decode_sample

SHUFFLE_BUFFER = 1000  # samples each worker holds undecoded to shuffle within its range


def buffer_shuffle(items: Iterator, size: int, rng: random.Random) -> Iterator:
    """A stream shuffled through a buffer of ``size`` items (webdataset's shuffle, seeded)."""
    buf: list = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        j = rng.randrange(size)
        yield buf[j]
        buf[j] = item
    rng.shuffle(buf)
    yield from buf


class ShardBatches(IterableDataset):
    """A shard source's training batches, made in DataLoader workers (``batch_size=None``).

    Epoch e orders the shards by a permutation drawn from (seed, e) and reads them as one stream
    of N samples, cut into P = ranks x workers contiguous ranges ("slots"), so no sample goes to
    two slots. Each slot passes its N // P samples through a shuffle buffer seeded by
    (seed, e, slot) and yields ``(N // P) // B`` batches of B, lists of (uint8 image, label,
    index) with ``None`` for a bad member; every rank makes the same number of steps.

    A rank's DataLoader takes its workers' batches in turn, so its batch k is batch k // W of
    slot k % W. Resuming after K batches of an epoch, worker w takes the part of slot
    (w + K) % W and replays its range (read, not decoded) up to that slot's share of K: the
    resumed run sees the samples, in the order, that the uninterrupted one would have, given the
    same ranks and workers. The order depends on those numbers; a resume with others is warned
    about and skips the same number of batches, which then are not the same samples.
    """

    def __init__(self, samples: ShardSamples, per_rank_batch: int, workers: int = 0,
                 seed: int = 0, buffer: int = SHUFFLE_BUFFER):
        self.samples = samples
        self.per_rank_batch = per_rank_batch
        self.workers = max(workers, 1)  # the main process is one worker when num_workers=0
        self.seed = seed
        self.buffer = buffer
        self.epoch = 0
        self.skip: tuple[int, int] | None = None  # (epoch, batches) already trained

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def steps_per_epoch(self, world: int | None = None) -> int:
        """Batches each rank makes in an epoch (0 when the source is too small to split)."""
        world = world_size() if world is None else world
        slots = world * self.workers
        return self.workers * (len(self.samples) // slots // self.per_rank_batch)

    def __len__(self) -> int:
        return self.steps_per_epoch()

    def state_dict(self) -> dict[str, Any]:
        return {"world": world_size(), "workers": self.workers}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = (state.get("world"), state.get("workers"))
        if saved != (world_size(), self.workers):
            warnings.warn(f"resuming a shard stream on {world_size()} process(es) x "
                          f"{self.workers} worker(s), saved with {saved[0]} x {saved[1]}: the "
                          "epoch skips as many batches, but not the same samples (some repeat, "
                          "some are missed until the next epoch)", UserWarning, stacklevel=2)

    def shard_order(self, epoch: int) -> list[int]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.samples.shards), generator=gen).tolist()

    def slot_range(self, slot: int, world: int) -> tuple[int, int]:
        """The [start, end) of the epoch's stream that ``slot`` reads."""
        size = len(self.samples) // (world * self.workers)
        return slot * size, (slot + 1) * size

    def stream(self, epoch: int, start: int, end: int) -> Iterator[tuple[int, dict | None]]:
        """(index, undecoded sample) of positions [start, end) of epoch ``epoch``'s stream."""
        at = 0
        for i in self.shard_order(epoch):
            shard = self.samples.shards[i]
            n = len(self.samples.kept(shard))
            if at + n > start and at < end:
                skip = max(0, start - at)
                for k, item in enumerate(self.samples.raw(shard, skip)):
                    if at + skip + k >= end:
                        break
                    yield item
            at += n
            if at >= end:
                return

    def batches(self, world: int, rank: int, worker: int) -> Iterator[list]:
        """The batches of one slot (rank, worker) in the current epoch, after any skip."""
        skipped = self.skip[1] if self.skip is not None and self.skip[0] == self.epoch else 0
        # the DataLoader asks worker 0 first: after K batches it plays the part of the worker
        # whose turn is batch K, and the others follow in the same turn
        part = (worker + skipped) % self.workers
        done = len(range(part, skipped, self.workers))  # batches that part had made
        slot = rank * self.workers + part
        start, end = self.slot_range(slot, world)
        per_slot = (end - start) // self.per_rank_batch
        rng = random.Random(f"{self.seed}-{self.epoch}-{slot}")
        items = buffer_shuffle(self.stream(self.epoch, start, end), self.buffer, rng)
        batch: list = []
        failed: list[int] = []
        for n, (index, sample) in enumerate(items):
            if n >= per_slot * self.per_rank_batch:
                break
            if n < done * self.per_rank_batch:
                continue  # replayed to keep the buffer's order, not decoded
            item = decode_sample(sample, self.samples.channels, self.samples.image_size)
            if item is None and sample is not None:  # None: the scan counted it already
                failed.append(index)
            batch.append(None if item is None else (*item, self.samples.position(index)))
            if len(batch) == self.per_rank_batch:
                yield batch
                batch = []
        if failed:
            warnings.warn(f"skipped {len(failed)} bad member(s) of the shards in epoch "
                          f"{self.epoch} (slot {slot}; e.g. index {failed[0]})", UserWarning,
                          stacklevel=2)

    def __iter__(self) -> Iterator[list]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        if workers != self.workers:
            raise RuntimeError(f"ShardBatches built for {self.workers} worker(s) runs in "
                               f"{workers}: give the DataLoader num_workers={self.workers}")
        yield from self.batches(world_size(), this_rank(), worker)

