"""Positive mining inside a method: mutual k-nearest neighbours of the training set in the
model's own embedding space, found without labels and kept as method state.

A memory bank holds one embedding per training sample, written by ``batch.indices`` at every
step; once an epoch's worth of samples has passed, the neighbour table is rebuilt from it. The
trainer knows nothing of this: the bank and table are buffers sized by ``DataSpec.num_samples``,
saved in every checkpoint and restored on resume, as G-SimCLR's pseudo-labels are a batch
policy any method can ask for.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed


class MutualNeighbours(nn.Module):
    """Inter-instance edges: i - j when each is among the other's ``k`` nearest neighbours (by
    cosine similarity) in a bank of the ``num_samples`` training samples' embeddings.

    ``update(embeddings, indices)`` writes the bank (all ranks' rows, so every rank keeps the
    same bank and table) and, after every ``refresh_epochs`` x ``num_samples`` samples, calls
    ``refresh()``: an exact k-NN over the filled rows in chunks of ``chunk`` rows (cost
    N^2 D multiply-adds: Fashion-MNIST's 60,000 x 128-d bank takes about half a minute on two
    CPU cores), then the mutual check. Before the first refresh there are no edges.
    ``edges(rows, columns)`` answers, for the samples of a batch, which pairs are mutual
    neighbours and which are one-sided (neither positives nor safe negatives).

    Labels, when the source has them, are stored only to report the label purity of the mined
    edges (``purity``: the fraction of mutual pairs whose two samples share a label); they never
    choose an edge.
    """

    def __init__(self, num_samples: int, dim: int, k: int = 5, refresh_epochs: float = 1.0,
                 chunk: int = 1024):
        super().__init__()
        if k < 1 or num_samples < 2:
            raise ValueError(f"need k >= 1 and at least 2 samples, got k={k}, "
                             f"num_samples={num_samples}")
        if refresh_epochs <= 0:
            raise ValueError(f"refresh_epochs must be > 0, got {refresh_epochs}")
        self.k = min(k, num_samples - 1)
        self.refresh_after = max(1, round(refresh_epochs * num_samples))
        self.chunk = chunk
        self.register_buffer("bank", torch.zeros(num_samples, dim))  # unit rows once written
        self.register_buffer("filled", torch.zeros(num_samples, dtype=torch.bool))
        self.register_buffer("knn", torch.full((num_samples, self.k), -1, dtype=torch.long))
        self.register_buffer("mutual", torch.zeros(num_samples, self.k, dtype=torch.bool))
        self.register_buffer("labels", torch.full((num_samples,), -1, dtype=torch.long))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("refreshes", torch.zeros((), dtype=torch.long))
        self.register_buffer("purity", torch.full((), float("nan")))

    @torch.no_grad()
    def update(self, embeddings: torch.Tensor, indices: torch.Tensor,
               labels: torch.Tensor | None = None) -> None:
        """Write (b, D) embeddings at their dataset ``indices`` (b,); refresh when due."""
        rows = distributed.gather_with_grad(indices)  # (B,)
        self.bank[rows] = F.normalize(
            distributed.gather_with_grad(embeddings.detach().float()), dim=1).to(self.bank.dtype)
        self.filled[rows] = True
        if labels is not None:
            self.labels[rows] = distributed.gather_with_grad(labels)
        self.seen += rows.numel()
        if int(self.seen) >= self.refresh_after:
            self.refresh()
            # keep the overshoot, so refreshes come every refresh_after samples on average and
            # not every ceil(refresh_after / B) batches
            self.seen.remainder_(self.refresh_after)

    @torch.no_grad()
    def refresh(self) -> None:
        """Rebuild the k-NN table and its mutual edges from the bank's filled rows."""
        ids = self.filled.nonzero().squeeze(1)  # (n,) dataset indices
        n = ids.numel()
        self.knn.fill_(-1)
        self.mutual.zero_()
        if n < 2:
            return
        k = min(self.k, n - 1)
        emb = self.bank[ids].float()  # (n, D)
        near = torch.empty(n, k, dtype=torch.long, device=emb.device)  # positions in ids
        # refresh runs inside training_loss: under bf16 autocast the similarities would tie
        with torch.autocast(device_type=emb.device.type, enabled=False):
            for start in range(0, n, self.chunk):
                sim = emb[start:start + self.chunk] @ emb.T  # (chunk, n)
                own = torch.arange(start, start + sim.shape[0], device=emb.device)
                sim[torch.arange(sim.shape[0], device=emb.device), own] = float("-inf")
                near[start:start + sim.shape[0]] = sim.topk(k, dim=1).indices
        # j in knn(i) is mutual when i is in knn(j) too
        mutual = (near[near] == torch.arange(n, device=emb.device)[:, None, None]).any(2)
        self.knn[ids, :k] = ids[near]
        self.mutual[ids, :k] = mutual
        self.refreshes += 1
        a, b = ids[:, None].expand(n, k)[mutual], ids[near][mutual]  # both ends of each edge
        la, lb = self.labels[a], self.labels[b]
        known = (la >= 0) & (lb >= 0)
        self.purity.fill_(float((la[known] == lb[known]).float().mean()) if bool(known.any())
                          else float("nan"))

    def edges(self, rows: torch.Tensor, columns: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """For samples ``rows`` (b,) against ``columns`` (B,), both dataset indices:
        (mutual, one_sided), each (b, B) bool."""
        near = self.knn[rows]  # (b, k)
        hit = near[:, :, None] == columns[None, None, :]  # (b, k, B)
        mutual = self.mutual[rows][:, :, None]
        return (hit & mutual).any(1), (hit & ~mutual).any(1)
