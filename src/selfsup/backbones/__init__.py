"""Encoders, each carrying the `Preprocessing` it expects."""

from __future__ import annotations

from torch import nn

from .preprocessing import Preprocessing
from .resnet import ARCHITECTURES, ResNetEncoder

# Chosen by measurement on a 2-core AVX-512/AMX CPU (benchmarks/RESULTS.md): a one-block-per-stage
# ResNet at width 32 runs ~3.9x faster than width 64 in bf16 channels_last and learns more per
# minute in a 10-minute budget.
CPU_DEFAULT = "resnet10w32"
BACKBONES = sorted(ARCHITECTURES)


def build_backbone(
    name: str,
    *,
    channels: int,
    input_size: int,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    small_stem: bool | None = None,
    resize_rule: str = "resize_shorter_center_crop",
) -> nn.Module:
    """Build a backbone by name. The small-image stem is chosen for inputs <= 64 px."""
    if name == "default":
        name = CPU_DEFAULT
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown backbone {name!r}; valid: {', '.join(BACKBONES + ['default'])}")
    if small_stem is None:
        small_stem = input_size <= 64
    mean = tuple(mean) if mean is not None else (0.5,) * channels
    std = tuple(std) if std is not None else (0.25,) * channels
    pre = Preprocessing(input_size, channels, mean, std, resize_rule)
    return ResNetEncoder(name, channels, small_stem, pre)


def backbone_from_config(config: dict, preprocessing: dict) -> nn.Module:
    """Rebuild an encoder from what `encoder.json` records."""
    pre = Preprocessing.from_dict(preprocessing)
    return ResNetEncoder(config["arch"], config["channels"], config["small_stem"], pre)


__all__ = ["BACKBONES", "CPU_DEFAULT", "Preprocessing", "backbone_from_config", "build_backbone"]
