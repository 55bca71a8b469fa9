"""Masked-modelling objectives: reconstruct what the encoder was not shown."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import rank_mean
from .contrastive import TemperatureScaled


class MaskedReconstruction(nn.Module):
    """MAE's pixel reconstruction loss (He et al. 2021, "Masked Autoencoders Are Scalable
    Vision Learners", sec. 3 "Reconstruction target"): the mean squared error between predicted
    and target patches, averaged over the masked patches only::

        l_k = mean_j (pred_kj - t_kj)^2                    (per patch k, over its p*p*C values)
        L   = sum_k m_k l_k / sum_k m_k                    (m_k = 1 if patch k was masked)

    With ``norm_pix`` the target is each patch normalized by its own mean and standard
    deviation, which the paper finds improves representations (Table 1d)::

        t_kj = (x_kj - mu_k) / sqrt(sigma_k^2 + 1e-6)

    with sigma_k^2 the *unbiased* variance over the patch's values, as the official code's
    ``Tensor.var`` computes it.

    Under data parallelism the denominator is the ranks' mean masked count (`rank_mean`), so
    DDP's average of the ranks' gradients is the global batch's even where the count of masked
    patches differs between ranks (MAE's masking gives every sample the same count).
    """

    distributed_loss: ClassVar[str] = "local"

    def __init__(self, norm_pix: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm_pix = norm_pix
        self.eps = eps

    def target(self, patches: torch.Tensor) -> torch.Tensor:
        """The reconstruction target of image patches (B, L, p*p*C)."""
        if not self.norm_pix:
            return patches
        mean = patches.mean(dim=-1, keepdim=True)  # (B, L, 1)
        var = patches.var(dim=-1, keepdim=True)  # unbiased, (B, L, 1)
        return (patches - mean) / (var + self.eps) ** 0.5

    def forward(self, pred: torch.Tensor, target_patches: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """``pred`` and ``target_patches`` (B, L, p*p*C), ``mask`` (B, L) with 1 = masked."""
        if pred.shape != target_patches.shape or mask.shape != pred.shape[:2]:
            raise ValueError(f"expected pred and target (B, L, D) and mask (B, L), got "
                             f"{tuple(pred.shape)}, {tuple(target_patches.shape)} and "
                             f"{tuple(mask.shape)}")
        per_patch = self.per_patch(pred, target_patches)  # (B, L)
        mask = mask.to(per_patch.dtype)
        return (per_patch * mask).sum() / rank_mean(mask.sum())

    def per_patch(self, pred: torch.Tensor, target_patches: torch.Tensor) -> torch.Tensor:
        """Each patch's error l_k (B, L), in float32 at least (HPM's loss predictor learns it)."""
        # float32 at least: bf16 squared errors summed over thousands of patches lose digits
        dtype = torch.promote_types(pred.dtype, torch.float32)
        target = self.target(target_patches.to(dtype))
        return (pred.to(dtype) - target).pow(2).mean(dim=-1)  # (B, L)


class RelativeLossPrediction(nn.Module):
    """HPM's loss-predictor objective, relative form (Wang et al. 2023, "Hard Patches Mining for
    Masked Image Modeling", sec. 3, "relative loss"; the official ``forward_learning_loss`` with
    ``relative=True``): for every ordered pair (i, j) of one image's masked patches whose true
    reconstruction errors differ, a binary cross-entropy that patch j is the harder::

        y_ij = 1[l_j > l_i],   s_ij = sigmoid(p_j - p_i)
        L    = - sum_{l_i != l_j} [y_ij log(s_ij + 1e-6) + (1 - y_ij) log(1 - s_ij + 1e-6)]
               / #{(i, j): l_i != l_j}

    with p the predicted and l the (detached) true per-patch errors. Only the order of the
    errors is learnt, never their values, which the paper finds keeps the predictor from
    overfitting to the exact losses. The 1e-6 inside the logs is the official code's.

    The count of unequal pairs can differ between ranks (ties), so under data parallelism the
    denominator is its mean over ranks (`rank_mean`): the global batch's loss and gradient.
    """

    distributed_loss: ClassVar[str] = "local"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``pred`` (B, n) predicted and ``target`` (B, n) true per-patch errors, n patches."""
        if pred.shape != target.shape or pred.ndim != 2:
            raise ValueError(f"expected pred and target (B, n), got {tuple(pred.shape)} and "
                             f"{tuple(target.shape)}")
        dtype = torch.promote_types(pred.dtype, torch.float32)
        pred, target = pred.to(dtype), target.detach().to(dtype)
        harder = target[:, None, :] > target[:, :, None]  # (B, n, n): [b, i, j] = l_j > l_i
        easier = target[:, None, :] < target[:, :, None]
        s = torch.sigmoid(pred[:, None, :] - pred[:, :, None])  # (B, n, n)
        loss = -(harder * torch.log(s + 1e-6) + easier * torch.log(1 - s + 1e-6))
        pairs = rank_mean((harder | easier).sum().to(dtype))
        return loss.sum() / pairs.clamp_min(1e-12)  # no pair anywhere: 0


class PatchChoice(nn.Module):
    """Selfie's patch-choice loss (Trinh et al. 2019, "Selfie: Self-supervised Pretraining for
    Image Embedding", sec. 2; the CPC loss of Oord et al. 2018): each query, built for one
    masked location of an image, picks the patch that belongs there among that image's masked
    patches, by a cross-entropy over dot products::

        logit_bij = v_bi . h_bj                      (query i, candidate patch j of image b)
        L = - mean_{b, i} log( exp(logit_bii) / sum_j exp(logit_bij) )

    The queries and candidates come in the same order (query i was made for candidate i's
    location), so the right answer is the diagonal. The logits go through one softmax, inside
    the cross-entropy; a softmax applied before it as well (as a public reimplementation does)
    would squash them into [0, 1] and leave almost no gradient.

    Each image's distractors are its own patches, so the loss is per image and the mean of the
    ranks' losses is the global one: no collective is needed.
    """

    distributed_loss: ClassVar[str] = "local"

    def forward(self, queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """``queries`` v (B, M, D) and ``candidates`` h (B, M, D), M >= 2 masked patches."""
        if queries.ndim != 3 or queries.shape != candidates.shape:
            raise ValueError(f"expected queries and candidates (B, M, D) of one shape, got "
                             f"{tuple(queries.shape)} and {tuple(candidates.shape)}")
        if queries.shape[1] < 2:
            raise ValueError(f"choosing a patch needs M >= 2 masked patches, got "
                             f"{queries.shape[1]}")
        if not (queries.is_floating_point() and candidates.is_floating_point()):
            raise ValueError(f"expected floating inputs, got {queries.dtype} and "
                             f"{candidates.dtype}")
        dtype = torch.promote_types(queries.dtype, torch.float32)
        logits = torch.einsum("bid,bjd->bij", queries.to(dtype), candidates.to(dtype))
        b, m, _ = logits.shape
        target = torch.arange(m, device=logits.device).repeat(b)  # (B * M,): the diagonal
        return F.cross_entropy(logits.reshape(b * m, m), target)


class CorruptedPixelL1(nn.Module):
    """SiT's reconstruction loss (Atito et al. 2021, "SiT: Self-supervised vIsion Transformer",
    Sara-Ahmed/SiT main.py ``r_loss``): the mean absolute error between the reconstruction
    and the clean image over the corrupted pixels only, every channel::

        L = sum_{b,c,y,x} m_byx |pred_bcyx - x_bcyx| / (C sum_{b,y,x} m_byx)

    with m the corrupted-pixel mask (the official ``recloss[mask == 1].mean()`` on an
    image-shaped mask). A batch with no corrupted pixel costs 0 (officially NaN).

    Each image's count of corrupted pixels is random, so under data parallelism the
    denominator is the ranks' mean count (`rank_mean`): the global batch's pixel mean exactly.
    """

    distributed_loss: ClassVar[str] = "local"

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                ) -> torch.Tensor:
        """``pred`` and ``target`` (B, C, H, W), ``mask`` (B, H, W) with 1 = corrupted."""
        if pred.ndim != 4 or pred.shape != target.shape or mask.shape != (
                pred.shape[0], *pred.shape[2:]):
            raise ValueError(f"expected pred and target (B, C, H, W) and mask (B, H, W), got "
                             f"{tuple(pred.shape)}, {tuple(target.shape)} and "
                             f"{tuple(mask.shape)}")
        if not (pred.is_floating_point() and target.is_floating_point()):
            raise ValueError(f"expected floating images, got {pred.dtype} and {target.dtype}")
        dtype = torch.promote_types(pred.dtype, torch.float32)
        m = mask.to(dtype)[:, None]  # (B, 1, H, W)
        err = (pred.to(dtype) - target.to(dtype)).abs() * m
        return err.sum() / rank_mean(m.sum() * pred.shape[1]).clamp_min(1e-12)


class MaskedTokenDistillation(nn.Module):
    """MMC's momentum self-distillation (Wu et al. 2023, "Masked Momentum Contrastive Learning
    for Zero-shot Semantic Understanding", sec. 3, "momentum self-distillation"; the paper
    states no equation and no code is public, so this form is ours, as methods/mmc.py says):
    the student's projected patch tokens s of a corrupted view regress the momentum teacher's
    projected patch tokens t of the clean view at the same positions, by BYOL's normalized
    squared error (Grill et al. 2020, eq. 2), weighted by how much of each patch was
    corrupted::

        l_bl = || s_bl / |s_bl| - t_bl / |t_bl| ||^2 = 2 - 2 cos(s_bl, t_bl)
        L    = sum_{b,l} w_bl l_bl / sum_{b,l} w_bl

    The teacher's tokens carry no gradient; a batch whose weights are all zero costs 0. Under
    data parallelism the denominator is the ranks' mean weight sum (`rank_mean`), as in
    `CorruptedPixelL1`: the global batch's weighted mean exactly.
    """

    distributed_loss: ClassVar[str] = "local"

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, weights: torch.Tensor
                ) -> torch.Tensor:
        """``student`` and ``teacher`` tokens (B, L, D), ``weights`` (B, L) >= 0."""
        if student.ndim != 3 or student.shape != teacher.shape or (
                weights.shape != student.shape[:2]):
            raise ValueError(f"expected student and teacher tokens (B, L, D) and weights (B, L),"
                             f" got {tuple(student.shape)}, {tuple(teacher.shape)} and "
                             f"{tuple(weights.shape)}")
        if not (student.is_floating_point() and teacher.is_floating_point()):
            raise ValueError(f"expected floating tokens, got {student.dtype} and "
                             f"{teacher.dtype}")
        dtype = torch.promote_types(student.dtype, torch.float32)
        s = F.normalize(student.to(dtype), dim=-1)
        t = F.normalize(teacher.detach().to(dtype), dim=-1)
        per_token = 2 - 2 * (s * t).sum(dim=-1)  # (B, L)
        w = weights.to(dtype)
        return (w * per_token).sum() / rank_mean(w.sum()).clamp_min(1e-12)


class HomologousContrastive(TemperatureScaled):
    """MixedAE's homologous contrastive loss (Chen et al. 2023, "Mixed Autoencoder for
    Self-supervised Visual Representation Learning", sec. 3, "homologous contrastive"): in each
    mixed image, a patch's embedding should be nearer the other patches of its own source image
    (its homologous patches) than the rest. Written, as no code is public, as the supervised
    contrastive loss L_out (Khosla et al. 2020, eq. 2) over one mixed image's n patches, with
    the source image as the label::

        l_i = -(1 / |P(i)|) sum_{p in P(i)} log( exp(z_i . z_p / tau)
                                                 / sum_{a != i} exp(z_i . z_a / tau) )
        L   = mean of l_i over every image's anchors i with P(i) not empty

    z L2-normalized; P(i) the other patches of i's source, the sum over a every other patch of
    the same mixed image. Each mixed image is its own problem, but the count of anchors with a
    positive varies, so under data parallelism the mean divides by the ranks' mean count
    (`rank_mean`): the global batch's loss exactly.
    """

    distributed_loss: ClassVar[str] = "local"

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__(temperature)

    def forward(self, z: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        """``z`` (G, n, D) embeddings of each mixed image's patches, ``sources`` (G, n) ints."""
        if z.ndim != 3 or sources.shape != z.shape[:2]:
            raise ValueError(f"expected embeddings (G, n, D) and sources (G, n), got "
                             f"{tuple(z.shape)} and {tuple(sources.shape)}")
        if not z.is_floating_point() or sources.is_floating_point():
            raise ValueError(f"expected floating embeddings and integer sources, got {z.dtype} "
                             f"and {sources.dtype}")
        dtype = torch.promote_types(z.dtype, torch.float32)
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = F.normalize(z.to(dtype), dim=-1)
            logits = z @ z.transpose(1, 2) / self.temperature  # (G, n, n)
            eye = torch.eye(z.shape[1], dtype=torch.bool, device=z.device)
            log_prob = F.log_softmax(logits.masked_fill(eye, float("-inf")), dim=-1)
            positives = (sources[:, :, None] == sources[:, None, :]) & ~eye  # (G, n, n)
            count = positives.sum(-1)  # (G, n)
            anchors = count > 0
            n_anchors = rank_mean(anchors.sum().to(dtype))  # every rank calls it, then checks
            if not bool(n_anchors > 0):
                raise ValueError("no patch shares its source with another: no positive pair")
            # where, not a product: the diagonal is -inf and 0 * -inf is nan
            total = torch.where(positives, log_prob, 0).sum(-1)  # (G, n)
            return -(total[anchors] / count[anchors]).sum() / n_anchors
