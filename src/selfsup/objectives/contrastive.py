"""Contrastive objectives: pull two views of a sample together, push other samples away."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ._inputs import check_two_views, loss_precision


class _TwoViewLogits:
    """Every anchor's scaled cosine similarity to every candidate of the global batch.

    Shared by the losses below so they differ only in what the denominator holds. For b samples
    on this rank and n = b * world_size in all, ``logits`` is (2b, 2n): rows are this rank's
    anchors (view 1 then view 2), columns all ranks' first views then all second views.
    """

    def __init__(self, z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> None:
        b = z1.shape[0]
        # Normalize before the gather: each rank normalizes only its own rows once.
        self.z1, self.z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)  # (b, D)
        self.n = n = b * distributed.world_size()
        candidates = torch.cat(
            (distributed.gather_with_grad(self.z1), distributed.gather_with_grad(self.z2))
        )  # (2n, D): all first views in rank order, then all second views
        anchors = torch.cat((self.z1, self.z2))  # (2b, D)
        self.logits = anchors @ candidates.T / temperature  # (2b, 2n)
        local = torch.arange(b, device=z1.device) + distributed.rank() * b  # (b,)
        self.self_index = torch.cat((local, local + n))  # (2b,) each anchor's own column
        self.positive_index = torch.cat((local + n, local))  # (2b,) its other view

    def without_self(self) -> torch.Tensor:
        """Logits with each anchor's own column at -inf: an anchor is never its own negative."""
        return self.logits.scatter(1, self.self_index[:, None], float("-inf"))  # (2b, 2n)

    def positive(self) -> torch.Tensor:
        return self.logits.gather(1, self.positive_index[:, None]).squeeze(1)  # (2b,)


class TemperatureScaled(nn.Module):
    """Base of the losses over cosine similarities divided by a temperature tau > 0."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature


class NTXent(TemperatureScaled):
    """NT-Xent, the normalized temperature-scaled cross-entropy of SimCLR.

    Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations",
    eq. (1). For a batch of N samples seen through two views, 2N projections z_1..z_2N, and a
    positive pair (i, j) of the same sample::

        l(i, j) = -log( exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau) )
        sim(u, v) = u.v / (|u| |v|)
        L = (1 / 2N) * sum over all 2N anchors i of l(i, j(i))

    Under ``torch.distributed`` the N samples are the global batch: every rank's projections are
    gathered as candidates, this rank's rows are its anchors, and the loss is the mean over them.
    DDP's averaging of gradients over ranks then yields the gradient of the full-batch loss.
    Every rank must hold the same number of samples.
    """

    # Each rank's loss is the mean over its own anchors; the full-batch loss is the ranks' mean.
    distributed_loss: ClassVar[str] = "local_anchors"

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """z1, z2: (b, D) projections of the two views on this rank; returns a scalar loss."""
        check_two_views(z1, z2)
        z1, z2 = loss_precision(z1), loss_precision(z2)
        with torch.autocast(device_type=z1.device.type, enabled=False):
            pairs = _TwoViewLogits(z1, z2, self.temperature)
            return F.cross_entropy(pairs.without_self(), pairs.positive_index)


class DCL(TemperatureScaled):
    """Decoupled contrastive loss: NT-Xent with the positive pair taken out of the denominator.

    Yeh et al. 2022, "Decoupled Contrastive Learning", eq. (6). With the notation of
    :class:`NTXent` and j(i) the other view of anchor i::

        l(i) = -sim(z_i, z_j(i)) / tau + log sum_{k not in {i, j(i)}} exp(sim(z_i, z_k) / tau)
        L = (1 / 2N) * sum over all 2N anchors i of l(i)

    Removing the positive decouples its gradient from the negatives' (the paper's
    negative-positive coupling factor), which is what makes small batches work. The loss can go
    below zero. Distributed as :class:`NTXent`: gathered candidates, each rank's mean over its
    own anchors; every rank must hold the same number of samples.
    """

    distributed_loss: ClassVar[str] = "local_anchors"

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """z1, z2: (b, D) projections of the two views on this rank; returns a scalar loss."""
        check_two_views(z1, z2)
        z1, z2 = loss_precision(z1), loss_precision(z2)
        with torch.autocast(device_type=z1.device.type, enabled=False):
            pairs = _TwoViewLogits(z1, z2, self.temperature)
            return (self.positive_weight(pairs) * -pairs.positive()
                    + _negatives_logsumexp(pairs)).mean()

    def positive_weight(self, pairs: _TwoViewLogits) -> torch.Tensor | float:
        return 1.0


class DCLW(DCL):
    """Weighted decoupled contrastive loss: DCL with a von Mises-Fisher weight on the positive.

    Yeh et al. 2022, "Decoupled Contrastive Learning", the DCLW loss. With the notation of
    :class:`DCL`, the positive term of sample i (both of its anchors) is scaled by::

        w(i) = 2 - exp(sim(z1_i, z2_i) / sigma) / ((1/N) sum_m exp(sim(z1_m, z2_m) / sigma))

    which averages to 1 over the batch and is larger for the pairs that are still far apart
    (the harder positives). N is the global batch. The weight is a constant in the backward
    pass (as in lightly's DCLW): it rescales each positive's pull, and the paper derives no
    gradient through it. As sigma grows every weight tends to 1 and DCLW to DCL.
    """

    def __init__(self, temperature: float = 0.1, sigma: float = 0.5) -> None:
        super().__init__(temperature)
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma = sigma

    def positive_weight(self, pairs: _TwoViewLogits) -> torch.Tensor:
        with torch.no_grad():
            agreement = (pairs.z1 * pairs.z2).sum(1) / self.sigma  # (b,) cosine / sigma
            everyone = distributed.gather_with_grad(agreement)  # (n,)
            weight = 2 - pairs.n * torch.exp(agreement - torch.logsumexp(everyone, 0))  # (b,)
        return torch.cat((weight, weight))  # (2b,) one weight per anchor, both views


def _negatives_logsumexp(pairs: _TwoViewLogits) -> torch.Tensor:
    """log sum over k not in {i, j(i)} of exp(logit_ik), per anchor: (2b,)."""
    negatives = pairs.without_self().scatter(1, pairs.positive_index[:, None], float("-inf"))
    return torch.logsumexp(negatives, dim=1)


class SupCon(TemperatureScaled):
    """Supervised contrastive loss, L^sup_out of Khosla et al. 2020 ("Supervised Contrastive
    Learning", eq. (2)).

    With the notation of :class:`NTXent`, A(i) = every projection but z_i, and P(i) the ones in
    A(i) whose sample has the label of anchor i (always including its other view j(i))::

        l(i) = -(1 / |P(i)|) * sum_{p in P(i)} log( exp(sim(z_i, z_p) / tau)
                                                    / sum_{a in A(i)} exp(sim(z_i, z_a) / tau) )
        L = (1 / 2N) * sum over all 2N anchors i of l(i)

    Without labels P(i) = {j(i)} and the loss is exactly NT-Xent. The official code's extra
    factor tau / base_tau is left out: it only rescales the learning rate. Distributed as
    :class:`NTXent`; the labels are gathered with the projections.
    """

    distributed_loss: ClassVar[str] = "local_anchors"

    def forward(self, z1: torch.Tensor, z2: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        """z1, z2: (b, D) projections of the two views; labels: (b,) integers or None."""
        check_two_views(z1, z2)
        if labels is not None and (labels.shape != z1.shape[:1] or labels.is_floating_point()):
            raise ValueError(f"labels must be {z1.shape[0]} integers, one per sample, got "
                             f"{labels.dtype} of shape {tuple(labels.shape)}")
        z1, z2 = loss_precision(z1), loss_precision(z2)
        with torch.autocast(device_type=z1.device.type, enabled=False):
            pairs = _TwoViewLogits(z1, z2, self.temperature)
            log_prob = F.log_softmax(pairs.without_self(), dim=1)  # (2b, 2n)
            if labels is None:
                positives = F.one_hot(pairs.positive_index, 2 * pairs.n).bool()  # (2b, 2n)
            else:
                everyone = distributed.gather_with_grad(labels)  # (n,)
                same = torch.cat((labels, labels))[:, None] == torch.cat((everyone, everyone))
                positives = same.scatter(1, pairs.self_index[:, None], False)  # (2b, 2n)
            # where, not a product: the anchor's own column is -inf and 0 * -inf is nan.
            total = torch.where(positives, log_prob, 0).sum(1)  # (2b,)
            return (-total / positives.sum(1)).mean()


class MomentumInfoNCE(TemperatureScaled):
    """MoCo v3's contrastive loss (Chen, Xie and He 2021, "An Empirical Study of Training
    Self-Supervised Vision Transformers", eq. 1 and Algorithm 1), as SiT's current official code
    uses it (Atito et al. 2021, Sara-Ahmed/SiT main.py ``SimCLR.contrastive_loss``): queries q
    from the student, keys k from a momentum teacher, the other keys of the batch as negatives::

        ctr(q, k) = - 2 tau mean_i log( exp(q_i . k_i / tau) / sum_j exp(q_i . k_j / tau) )

    with q and k L2-normalized. The factor 2 tau is MoCo v3's (it keeps the gradient's scale
    independent of tau). The keys carry no gradient. Under ``torch.distributed`` every rank's
    keys are gathered as candidates and each rank averages over its own queries.
    """

    distributed_loss: ClassVar[str] = "local_anchors"

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__(temperature)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """q: (b, D) student queries, k: (b, D) their teacher keys; a scalar loss."""
        check_two_views(q, k)
        q = loss_precision(q)
        k = k.to(q.dtype)
        with torch.autocast(device_type=q.device.type, enabled=False):
            q = F.normalize(q, dim=1)
            keys = distributed.gather_with_grad(F.normalize(k.detach(), dim=1))  # (n, D)
            logits = q @ keys.T / self.temperature  # (b, n)
            own = torch.arange(len(q), device=q.device) + distributed.rank() * len(q)  # (b,)
            return 2 * self.temperature * F.cross_entropy(logits, own)
