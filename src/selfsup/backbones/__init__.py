"""Encoders, registered by name (``registry.py`` states their contract), each carrying the
`Preprocessing` it expects."""

from __future__ import annotations

from torch import nn

from . import ft_transformer, resnet, scatnet, vit  # noqa: F401  (registers every backbone)
from .preprocessing import Preprocessing, preprocessing_from_dict
from .registry import BACKBONES, get_backbone, register_backbone
from .table_preprocessing import TablePreprocessing

# Chosen by measurement on a 2-core AVX-512/AMX CPU (benchmarks/RESULTS.md): a one-block-per-stage
# ResNet at width 32 runs ~3.9x faster than width 64 in bf16 channels_last and learns more per
# minute in a 10-minute budget.
CPU_DEFAULT = "resnet10w32"


def build_backbone(name: str, *, channels: int, input_size: int,
                   mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                   resize_rule: str = "resize_shorter_center_crop", **config) -> nn.Module:
    """Build a registered backbone by name for images of ``channels`` x ``input_size``^2."""
    if name == "default":
        name = CPU_DEFAULT
    info = get_backbone(name)
    mean = tuple(mean) if mean is not None else (0.5,) * channels
    std = tuple(std) if std is not None else (0.25,) * channels
    pre = Preprocessing(input_size, channels, mean, std, resize_rule)
    return info.build(pre, channels=channels, input_size=input_size, **config)


def build_table_backbone(name: str, preprocessing: TablePreprocessing, **config) -> nn.Module:
    """Build a registered table backbone (family "table") for ``preprocessing``."""
    info = get_backbone(name)
    if info.family != "table":
        tables = sorted(n for n, b in BACKBONES.items() if b.family == "table")
        raise ValueError(f"backbone {name} encodes images; a table needs one of "
                         f"{', '.join(tables)}")
    return info.build(preprocessing, **config)


def backbone_from_config(config: dict, preprocessing: dict) -> nn.Module:
    """Rebuild an encoder from what ``encoder.json`` records (its name and config)."""
    config = dict(config)
    if "name" not in config and "arch" in config:  # records from before the registry
        config["name"] = config.pop("arch")
    info = get_backbone(config.pop("name"))
    return info.build(preprocessing_from_dict(preprocessing), **config)


__all__ = ["BACKBONES", "CPU_DEFAULT", "Preprocessing", "TablePreprocessing",
           "backbone_from_config", "build_backbone", "build_table_backbone", "get_backbone",
           "preprocessing_from_dict", "register_backbone"]
