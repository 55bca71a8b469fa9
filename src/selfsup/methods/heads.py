"""Projection heads."""

from __future__ import annotations

from torch import nn


def projection_mlp(
    in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, last_bn: bool = False
) -> nn.Sequential:
    """Linear-BN-ReLU blocks then a final linear layer (SimCLR v2 / Barlow Twins projector).

    ``last_bn`` adds an affine-free BatchNorm after the last layer.
    """
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers - 1):
        layers += [nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim),
                   nn.ReLU(inplace=True)]
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim, bias=not last_bn))
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)
