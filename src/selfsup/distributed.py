"""Collectives that carry gradients, for losses whose batch spans every rank.

Contrastive losses need every rank's samples as negatives (all-gather); redundancy-reduction
losses need batch statistics and the cross-correlation over the global batch (all-reduce). Both
must pass gradients back to the rank that produced each sample, which the plain
``torch.distributed`` collectives do not. Outside a process group, or in a group of one, every
function here is the identity, so single-process code runs exactly the plain path.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist

# torch 2.x marks torch.distributed.nn.functional deprecated in favour of the private
# torch.distributed._functional_collectives. The public autograd collectives still give the right
# gradients (tests/test_distributed.py checks them on gloo), so we keep them and silence that one
# FutureWarning at the call rather than in the user's global filters. They are imported at the
# call too, so builds of torch without distributed support can still import this module.
_DEPRECATION = r"torch\.distributed\.nn\.functional\.\w+ is deprecated"


def _in_group() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of ranks in the default process group; 1 when there is none."""
    return dist.get_world_size() if _in_group() else 1


def rank() -> int:
    """This process's rank in the default process group; 0 when there is none."""
    return dist.get_rank() if _in_group() else 0


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``x`` along dim 0, in rank order, keeping the graph.

    ``(b, ...) -> (b * world_size, ...)``. Every rank must pass the same shape. In backward each
    rank receives, for its own slice, the sum over ranks of the gradient flowing into that slice,
    so a loss computed on every rank from the gathered batch trains the rank that owns each row.
    """
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_DEPRECATION, category=FutureWarning)
        return torch.cat(all_gather(x), dim=0)


def all_reduce_sum_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Sum ``x`` over ranks, keeping the graph; the backward is the sum of the ranks' gradients."""
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_reduce

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_DEPRECATION, category=FutureWarning)
        return all_reduce(x, op=dist.ReduceOp.SUM)


def rank_mean(count: torch.Tensor) -> torch.Tensor:
    """The mean over ranks of a loss's normalizer ``count`` (a detached scalar: corrupted
    pixels, pairs, weights), for a loss written ``sum_local / rank_mean(count_local)``.

    DDP averages the ranks' gradients, so the ranks' mean of ``sum_r / rank_mean(count)`` is
    ``sum_all / count_all``: the global-batch loss and gradient exactly, however the count
    differs between ranks, where each rank's own mean ``sum_r / count_r`` gives them only when
    the counts are equal. Every rank must call it at the same point of its step.
    """
    if world_size() == 1:
        return count
    total = count.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / world_size()
