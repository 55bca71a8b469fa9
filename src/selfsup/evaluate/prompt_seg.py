"""Zero-shot segmentation by a prompt patch (the evaluation protocol of "Masked Momentum
Contrastive Learning for Zero-shot Semantic Understanding"): with no training at all, how well
do a frozen ViT's patch tokens tell one object from its background?

For every image with an object mask:

1. coverage c_l: the fraction of patch l's pixels inside the object; object patches c_l >= 1/2;
2. the prompt: the patch most inside the object (highest c_l; ties to the one nearest the
   object's centroid), standing for the user's click on the object;
3. s_l = cos(t_l, t_prompt) for every patch token t_l (B, L, D);
4. predicted object: s_l >= threshold, where the threshold is the image's mean similarity
   (``"mean"``, the default: cosine scales differ between encoders, and a fixed number would
   favour one) or a fixed value; the patch mask is upsampled (nearest) to pixels and scored
   by IoU against the pixel mask;
5. discrimination, threshold-free: the mean similarity of the prompt to the other object
   patches (intra) and to the background patches (inter), their gap, and the AUROC of s as a
   score separating object from background patches (the paper's "overlap" of the two
   similarity distributions, as one number: 1 = no overlap, 0.5 = none told apart).

The paper states the protocol, not these details; the coverage rule, the prompt choice, the
mean threshold and the AUROC are ours, fixed here and never tuned on the scored images.
Images whose mask covers no patch by half, or covers all of them, cannot be scored and are
counted under ``skipped``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import Preprocessing
from ..data.masks import MaskedImages

BATCH = 256


def check_token_backbone(encoder: nn.Module) -> None:
    if not callable(getattr(encoder, "tokens", None)):
        name = getattr(encoder, "config", {}).get("name", type(encoder).__name__)
        raise ValueError(f"prompt_seg needs a patch-token backbone (vit_tiny, vit_small); this "
                         f"encoder is {name}")


def patch_tokens(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Normalized images (B, C, S, S) -> patch tokens (B, L, D), row-major, without CLS."""
    return encoder.tokens(x)[:, 1:]


def patch_coverage(masks: torch.Tensor, patch: int) -> torch.Tensor:
    """bool (B, S, S) -> the object fraction of every patch (B, L), row-major."""
    return F.avg_pool2d(masks[:, None].float(), patch).flatten(1)


def choose_prompt(coverage: torch.Tensor, grid: int) -> torch.Tensor:
    """The prompt patch of each image (B,): highest coverage, ties to the patch nearest the
    coverage-weighted centroid of the object."""
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    pos = torch.stack([rows.flatten(), cols.flatten()], 1).float().to(coverage.device)  # (L, 2)
    weight = coverage / coverage.sum(1, keepdim=True).clamp_min(1e-12)
    centroid = weight @ pos  # (B, 2)
    dist = torch.cdist(centroid[:, None], pos[None].expand(len(coverage), -1, -1))[:, 0]
    best = coverage == coverage.amax(1, keepdim=True)  # (B, L)
    return dist.masked_fill(~best, float("inf")).argmin(1)


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """P(score of a positive > score of a negative), ties counting 1/2 (Mann-Whitney U)."""
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None]).float().mean()
    ties = (pos[:, None] == neg[None]).float().mean()
    return float(greater + 0.5 * ties)


def score_image(sim: torch.Tensor, coverage: torch.Tensor, prompt: int, mask: torch.Tensor,
                grid: int, threshold: float | str) -> dict[str, float]:
    """One image: similarities (L,), coverage (L,), the prompt's index, the pixel mask (S, S)."""
    inside = coverage >= 0.5
    thr = float(sim.mean()) if threshold == "mean" else float(threshold)
    predicted = (sim >= thr).float().view(1, 1, grid, grid)
    pixels = F.interpolate(predicted, size=mask.shape, mode="nearest")[0, 0] > 0
    iou = (pixels & mask).sum() / (pixels | mask).sum()
    others = inside.clone()
    others[prompt] = False
    intra = float(sim[others].mean()) if others.any() else float("nan")
    return {"iou": float(iou), "intra": intra, "inter": float(sim[~inside].mean()),
            "auroc": auroc(sim, inside)}


@torch.no_grad()
def prompt_segmentation(encoder: nn.Module, data: MaskedImages,
                        threshold: float | str = "mean", bf16: bool = False,
                        preprocessing: Preprocessing | None = None) -> dict[str, Any]:
    """The protocol on ``data`` (images and masks at the encoder's input size)."""
    check_token_backbone(encoder)
    encoder.eval()
    pre = preprocessing or encoder.preprocessing
    device = next(encoder.parameters()).device
    patch, grid = encoder.patch_size, encoder.grid_size
    if data.masks.shape[-1] != grid * patch:
        raise ValueError(f"masks are {data.masks.shape[-1]} px but the encoder sees "
                         f"{grid * patch} px")
    rows, skipped = [], dict(data.skipped)
    for start in range(0, len(data.images), BATCH):
        x = pre(data.images[start:start + BATCH].to(device))
        masks = data.masks[start:start + BATCH].to(device)  # (B, S, S)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            tokens = patch_tokens(encoder, x)
        tokens = F.normalize(tokens.float(), dim=-1)  # (B, L, D)
        coverage = patch_coverage(masks, patch)  # (B, L)
        prompts = choose_prompt(coverage, grid)  # (B,)
        sims = torch.einsum("bld,bd->bl", tokens, tokens[torch.arange(len(x)), prompts])
        inside = coverage >= 0.5
        for i in range(len(x)):
            if not inside[i].any():
                skipped["no patch half inside the object"] = skipped.get(
                    "no patch half inside the object", 0) + 1
            elif inside[i].all():
                skipped["object covers every patch"] = skipped.get(
                    "object covers every patch", 0) + 1
            else:
                rows.append(score_image(sims[i].cpu(), coverage[i].cpu(), int(prompts[i]),
                                        masks[i].cpu(), grid, threshold))
    if not rows:
        raise ValueError(f"prompt_seg: none of the {len(data.images)} images of {data.name} "
                         f"could be scored ({skipped})")
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}
    return {"miou": mean["iou"], "intra_similarity": mean["intra"],
            "inter_similarity": mean["inter"], "similarity_gap": mean["intra"] - mean["inter"],
            "auroc": mean["auroc"], "n_images": len(rows), "skipped": skipped,
            "threshold": threshold, "masks": data.mask_rule, "data": data.name}
