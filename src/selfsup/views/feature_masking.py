"""Context and target feature subsets for tables (T-JEPA: Thimonier et al. 2024, after I-JEPA's
multi-block masks, Assran et al. 2023): a function a method calls, like the patch masks.

Per batch, one context size and one target size are drawn (every row of a batch masks as many
features, so the subsets stack into tensors); per row, a random permutation of the features
gives the context (its first ``n_ctx``) and ``num_targets`` targets (the next ``n_tgt`` each),
so the context and the targets are pairwise disjoint.
"""

from __future__ import annotations

import torch

MAX_DRAWS = 100


def feature_mask_ranges(num_features: int, context_share: tuple[float, float],
                        target_share: tuple[float, float], num_targets: int
                        ) -> tuple[tuple[int, int], tuple[int, int]]:
    """Shares of the features -> inclusive size ranges (lo, hi) for the context and each target,
    at least one feature each; ValueError when even the smallest sizes do not fit."""
    for what, (lo, hi) in (("context", context_share), ("target", target_share)):
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"{what} share must be 0 < min <= max <= 1, got ({lo}, {hi})")
    if num_targets < 1:
        raise ValueError(f"num_targets must be >= 1, got {num_targets}")

    ctx, tgt = _sizes(num_features, context_share), _sizes(num_features, target_share)
    if ctx[0] + num_targets * tgt[0] > num_features:
        raise ValueError(f"{num_features} features cannot hold a context of {ctx[0]} and "
                         f"{num_targets} disjoint targets of {tgt[0]}: lower num_targets or the "
                         "minimum shares")
    return ctx, tgt


def _sizes(num_features: int, share: tuple[float, float]) -> tuple[int, int]:
    lo = max(1, round(num_features * share[0]))
    return lo, max(lo, round(num_features * share[1]))


def targets_that_fit(num_features: int, context_share: tuple[float, float],
                     target_share: tuple[float, float], wanted: int) -> int:
    """The most disjoint targets, up to ``wanted``, that fit beside a context at the smallest
    sizes (at least 1: `feature_mask_ranges` then says why even one does not fit)."""
    ctx, tgt = _sizes(num_features, context_share)[0], _sizes(num_features, target_share)[0]
    return max(1, min(wanted, (num_features - ctx) // tgt))


def sample_feature_masks(batch_size: int, num_features: int, context_range: tuple[int, int],
                         target_range: tuple[int, int], num_targets: int,
                         device: torch.device | str | None = None,
                         generator: torch.Generator | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature ids in 0..num_features-1: context (B, n_ctx) and targets (M, B, n_tgt), each row
    sorted, the context and the M targets of a row pairwise disjoint.

    The sizes are uniform integers in the inclusive ranges, drawn again until
    ``n_ctx + M * n_tgt`` fits (the authors' rejection loop); after `MAX_DRAWS` the smallest
    sizes, which `feature_mask_ranges` checked, are used.
    """
    def draw(lo_hi: tuple[int, int]) -> int:
        return int(torch.randint(lo_hi[0], lo_hi[1] + 1, (1,), generator=generator))

    n_ctx, n_tgt = context_range[0], target_range[0]
    for _ in range(MAX_DRAWS):
        c, t = draw(context_range), draw(target_range)
        if c + num_targets * t <= num_features:
            n_ctx, n_tgt = c, t
            break
    if n_ctx + num_targets * n_tgt > num_features:
        raise ValueError(f"{num_features} features cannot hold a context of {n_ctx} and "
                         f"{num_targets} disjoint targets of {n_tgt}")
    noise = torch.rand(batch_size, num_features, device=device, generator=generator)
    order = noise.argsort(dim=1)  # (B, F): a random permutation per row
    context = order[:, :n_ctx].sort(dim=1).values  # (B, n_ctx)
    targets = order[:, n_ctx:n_ctx + num_targets * n_tgt].reshape(batch_size, num_targets, n_tgt)
    return context, targets.transpose(0, 1).sort(dim=2).values  # (M, B, n_tgt)
