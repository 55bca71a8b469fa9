"""G-SimCLR's guided batches (Chakraborty et al. 2020, "G-SimCLR: Self-Supervised Contrastive
Learning with Guided Projection via Pseudo Labelling").

A small denoising autoencoder learns the unlabeled training images, k-means on its latent codes
gives pseudo-labels, and batches are formed so that no two images of one pseudo-class meet in a
batch: the NT-Xent negatives are then less likely to be images of the same class.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import nn
from torch.utils.data import DataLoader, Sampler

from .. import distributed
from .split import Split


class DenoisingAutoencoder(nn.Module):
    """Conv encoder to a ``latent_dim`` code, transposed-conv decoder back to the image.

    Images are resized to 16 px inside, so any input size works and training stays cheap on a
    CPU: k-means needs the coarse shape of an image, which the code keeps; the reconstruction
    itself is thrown away.
    """

    SIZE = 16

    def __init__(self, channels: int, latent_dim: int = 64, width: int = 16):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.ReLU(),  # 8 px
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),  # 4 px
            nn.Flatten(), nn.Linear(2 * width * 16, latent_dim))
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 2 * width * 16), nn.ReLU(), nn.Unflatten(1, (2 * width, 4, 4)),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1), nn.Sigmoid())

    @classmethod
    def prepare(cls, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> float (B, C, 16, 16) in [0, 1]."""
        x = images.float() / 255.0
        return nn.functional.interpolate(x, size=(cls.SIZE, cls.SIZE), mode="bilinear",
                                         antialias=True, align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _uint8_batches(split: Split, batch_size: int, shuffle: bool, seed: int
                   ) -> Iterator[torch.Tensor]:
    loader = DataLoader(split.dataset, batch_size=batch_size, shuffle=shuffle,
                        collate_fn=split.collate_fn,
                        generator=torch.Generator().manual_seed(seed))
    for images, _ in loader:
        if len(images):
            yield images


def pseudo_labels(split: Split, clusters: int, steps: int | None = None, noise: float = 0.2,
                  latent_dim: int = 64, seed: int = 0) -> np.ndarray:
    """G-SimCLR's pseudo-labels (N,) int64: k-means with ``clusters`` on the latent codes of a
    denoising autoencoder trained for ``steps`` Adam steps of 256 images (Gaussian noise of std
    ``noise`` on [0, 1] pixels, MSE to the clean image). By default 600 steps (2.5 epochs of
    Fashion-MNIST) or 10 epochs, whichever is fewer: a small set needs fewer steps, and more
    passes over it mostly memorize. Deterministic for a seed."""
    n = len(split)
    if steps is None:
        steps = min(600, 10 * -(-n // 256))
    if not 1 <= clusters <= n:
        raise ValueError(f"clusters must be between 1 and the {n} training images, got "
                         f"{clusters}")
    gen = torch.Generator().manual_seed(seed)
    first = next(_uint8_batches(split, 1, False, seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DenoisingAutoencoder(first.shape[1], latent_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    step, epoch = 0, 0
    while step < steps:
        for images in _uint8_batches(split, 256, True, seed + epoch):
            x = model.prepare(images)
            noisy = (x + noise * torch.randn(x.shape, generator=gen)).clamp(0, 1)
            loss = nn.functional.mse_loss(model(noisy), x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step == steps:
                break
        epoch += 1
    with torch.no_grad():
        codes = torch.cat([model.encoder(model.prepare(images))
                           for images in _uint8_batches(split, 1024, False, seed)])  # (N, latent)
    if len(codes) != n:
        raise ValueError(f"{n - len(codes)} training images failed to decode; guided batches "
                         "need every image")
    k_means = KMeans(n_clusters=clusters, n_init=1, random_state=seed)
    return k_means.fit_predict(codes.numpy()).astype(np.int64)


class GuidedBatchSampler(Sampler[list[int]]):
    """Batches in which no two indices share a pseudo-label, each index once per epoch.

    Indices are shuffled within their cluster, clusters are laid end to end in random order,
    and position p of that list goes to batch p mod M (M = number of batches). Members of one
    cluster sit at consecutive positions, so any cluster of at most M members lands in M
    distinct batches. A cluster larger than M cannot fit: each epoch it contributes a random M
    of its members (a different M every epoch) and M shrinks until the rest fill whole batches.
    This is why there must be at least as many clusters as the global batch size (else two of
    one cluster must meet in a batch: pigeonhole) and, comfortably, several times as many.

    Each epoch's batches are a function of (seed, epoch), so every DDP rank builds the same
    global batches and takes its own slice of them, in rank order; world size and rank are read
    when iterating, after DDP has started. ``skip`` (epoch, batches) resumes mid-epoch, as
    ``train.data_order.ShardedShuffle`` does.
    """

    def __init__(self, labels: np.ndarray, global_batch: int, seed: int = 0):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.global_batch = global_batch
        self.seed = seed
        self.epoch = 0
        self.skip: tuple[int, int] | None = None
        clusters = len(np.unique(self.labels))
        if clusters < global_batch:
            raise ValueError(f"guided batches need at least as many pseudo-classes as the "
                             f"global batch size: {clusters} clusters for batches of "
                             f"{global_batch}")

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch."""
        self.epoch = epoch

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's global batches, each an array of ``global_batch`` dataset indices."""
        rng = np.random.default_rng([self.seed, epoch])
        members = [rng.permutation(np.flatnonzero(self.labels == c))
                   for c in rng.permutation(np.unique(self.labels))]
        sizes = np.array([len(m) for m in members])
        batches = len(self.labels) // self.global_batch
        while batches > 0 and np.minimum(sizes, batches).sum() < batches * self.global_batch:
            batches -= 1
        if batches == 0:
            return []
        order = np.concatenate([m[:batches] for m in members])
        # a random remainder leaves so every batch is full; dropping entries only narrows the
        # gaps between members of one cluster, which stay below M
        order = order[np.sort(rng.permutation(len(order))[:batches * self.global_batch])]
        slots = np.arange(len(order)) % batches
        return [order[slots == i] for i in range(batches)]

    def steps_per_epoch(self) -> int:
        return len(self.global_batches(self.epoch))

    def __iter__(self) -> Iterator[list[int]]:
        world, r = distributed.world_size(), distributed.rank()
        if self.global_batch % world:
            raise ValueError(f"global batch {self.global_batch} does not split over {world} "
                             "processes")
        b = self.global_batch // world
        start = self.skip[1] if self.skip is not None and self.skip[0] == self.epoch else 0
        self.skip = None
        for batch in self.global_batches(self.epoch)[start:]:
            yield batch[r * b:(r + 1) * b].tolist()

    def __len__(self) -> int:
        return self.steps_per_epoch()
