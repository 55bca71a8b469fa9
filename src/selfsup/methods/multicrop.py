"""Multi-crop for the two-view objectives (Caron et al. 2020, "Unsupervised Learning of Visual
Features by Contrasting Cluster Assignments", sec. 3.2): two global crops plus V small ones,
where a small crop is compared only with the global crops, never with another small crop::

    L = 1 / P * [ l(z_1, z_2) + sum_{v = 3}^{2 + V} ( l(z_1, z_v) + l(z_2, z_v) ) ],   P = 1 + 2V

for any two-view loss l (NT-Xent, Barlow Twins, ...). With two views it is l(z_1, z_2) exactly,
so a method that takes this path behaves as before under ``two_crop`` views. Small crops cost a
fraction of a global crop's FLOPs (a 14 px crop of a 28 px image about a quarter), which is why
they are the first lever for more learning per CPU minute.

Encoding: each global crop in its own forward pass, as the two-view methods have always done
(batch norm sees one view per pass); the small crops, one size, in one pass together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def project_views(views: torch.Tensor | Sequence[torch.Tensor],
                  project: Callable[[torch.Tensor], torch.Tensor]) -> list[torch.Tensor]:
    """The views a view maker returned ((x1, x2) or [x1, x2, s_1, ..., s_V]) -> their
    projections [(B, D)] * (2 + V), through ``project`` (encoder then projector)."""
    views = list(views)
    if len(views) < 2:
        raise ValueError(f"a two-view method needs at least two views, got {len(views)}")
    out = [project(views[0]), project(views[1])]
    if len(views) > 2:
        small = torch.cat(views[2:])  # (V B, C, s, s)
        out += list(project(small).chunk(len(views) - 2))
    return out


def multi_crop_loss(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    z: Sequence[torch.Tensor]) -> torch.Tensor:
    """The mean of ``loss`` over the global pair and every (global, small) pair."""
    terms = [loss(z[0], z[1])]
    for small in z[2:]:
        terms += [loss(z[0], small), loss(z[1], small)]
    return torch.stack(terms).mean()
