"""Optimizers: SGD, LARS (You et al. 2017, via timm) and AdamW."""

from __future__ import annotations

import torch
from timm.optim import Lars
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Biases and normalization weights get no weight decay and, under LARS, no layer-wise
    adaptation (SimCLR and Barlow Twins exclude them; timm's LARS adapts only decayed groups)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float,
                    betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Optimizer:
    groups = parameter_groups(model, weight_decay)
    if name == "lars":
        return Lars(groups, lr=lr, momentum=0.9, trust_coeff=0.001)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))
    raise ValueError(f"unknown optimizer {name!r}; valid: lars, sgd, adamw")
