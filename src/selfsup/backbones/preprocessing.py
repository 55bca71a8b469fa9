"""The preprocessing an encoder expects, per modality, fitted on the training split and saved
beside its weights (``encoder.json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from .table_preprocessing import TablePreprocessing

RESIZE_RULES = ("resize_shorter_center_crop", "resize_exact")


@dataclass(frozen=True)
class Preprocessing:
    """How raw uint8 images become encoder input.

    ``resize_rule`` says how an image of another size is brought to ``input_size``:
    ``resize_shorter_center_crop`` (the ImageNet rule) or ``resize_exact``.
    """

    input_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_rule: str = "resize_shorter_center_crop"
    modality: ClassVar[str] = "image"

    def __post_init__(self) -> None:
        if self.resize_rule not in RESIZE_RULES:
            raise ValueError(f"unknown resize rule {self.resize_rule!r}; valid: {RESIZE_RULES}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError("mean and std need one value per channel")

    @property
    def input_dim(self) -> int:
        """Values an input is made of, C x S x S (`collapse.CollapseCheck` reads it)."""
        return self.channels * self.input_size ** 2

    def to_dict(self) -> dict:
        return {"modality": self.modality, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        return cls(
            input_size=int(d["input_size"]),
            channels=int(d["channels"]),
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
            resize_rule=d.get("resize_rule", "resize_shorter_center_crop"),
        )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1], (B, C, H, W) -> standardized with this record's mean/std."""
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - mean) / std

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) from any source -> float (B, C, S, S) ready for the encoder."""
        x = images.float() / 255.0
        if x.shape[1] != self.channels:
            if x.shape[1] == 3 and self.channels == 1:
                x = x.mean(dim=1, keepdim=True)
            elif x.shape[1] == 1 and self.channels == 3:
                x = x.expand(-1, 3, -1, -1)
            else:
                raise ValueError(f"cannot map {x.shape[1]} channels to {self.channels}")
        h, w = x.shape[-2:]
        s = self.input_size
        if (h, w) != (s, s):
            if self.resize_rule == "resize_exact":
                x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True,
                                  align_corners=False)
            else:
                scale = s / min(h, w)
                nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
                x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True,
                                  align_corners=False)
                top, left = (nh - s) // 2, (nw - s) // 2
                x = x[..., top : top + s, left : left + s]
        return self.normalize(x)


PREPROCESSINGS = {"image": Preprocessing, "table": TablePreprocessing}


def preprocessing_from_dict(d: dict) -> Preprocessing:
    """The preprocessing record ``encoder.json`` holds (`Preprocessing` for images,
    `table_preprocessing.TablePreprocessing` for tables); records before modalities were named
    are images."""
    modality = d.get("modality", "image")
    if modality not in PREPROCESSINGS:
        raise ValueError(f"unknown preprocessing modality {modality!r}; valid: "
                         f"{', '.join(PREPROCESSINGS)}")
    return PREPROCESSINGS[modality].from_dict(d)
