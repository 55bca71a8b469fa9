"""Two-crop views (SimCLR, Chen et al. 2020, sec. 3 and appendix A), batched on tensors.

Every sample of a batch gets its own random crop, flip, jitter, grayscale, blur and solarization
parameters; the batch never leaves the device it is on and never goes through PIL.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import kornia.augmentation as K
import torch
from torch import nn

from ..backbones.preprocessing import Preprocessing
from .geometric import random_resized_crop_flip
from .photometric import brightness_contrast


@dataclass
class ViewConfig:
    """Augmentation strengths. Defaults follow SimCLR's CIFAR recipe, scaled for small images."""

    crop_scale: tuple[float, float] = (0.2, 1.0)
    # Side of the training crops as a fraction of the encoder's input size (``crop_size``
    # overrides it in pixels). Training below the test resolution costs fewer FLOPs per view,
    # and random-resized-crop training tests better at a higher resolution anyway (Touvron et
    # al. 2019, "Fixing the train-test resolution discrepancy").
    crop_ratio: float = 1.0
    crop_size: int | None = None
    flip_p: float = 0.5
    jitter_p: float = 0.8
    jitter_strength: float = 0.5  # SimCLR's s: brightness=contrast=saturation=0.8s, hue=0.2s
    grayscale_p: float = 0.2      # 3-channel inputs only
    blur_p: float = 0.0           # SimCLR turns blur off for 32 px images
    solarize_p: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class TwoCropViews(nn.Module):
    """uint8 (B, C, H, W) -> two float views (B, C, S, S), normalized by ``preprocessing``.

    Crop, flip and one-channel jitter are batched tensor code (geometric.py, photometric.py:
    ~20x faster than kornia on small images); colour jitter with saturation and hue, grayscale,
    blur and solarization, which only larger RGB recipes use, are kornia's.
    """

    def __init__(self, preprocessing: Preprocessing, config: ViewConfig | None = None):
        super().__init__()
        cfg = config or ViewConfig()
        self.config = cfg
        self.preprocessing = preprocessing
        s, c = cfg.jitter_strength, preprocessing.channels
        self.size = cfg.crop_size or max(1, round(cfg.crop_ratio * preprocessing.input_size))
        self.jitter_1ch = cfg.jitter_p > 0 and s > 0 and c == 1
        ops: list[nn.Module] = []
        if cfg.jitter_p > 0 and s > 0 and c == 3:
            ops.append(K.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, p=cfg.jitter_p))
        if c == 3 and cfg.grayscale_p > 0:
            ops.append(K.RandomGrayscale(p=cfg.grayscale_p))
        if cfg.blur_p > 0:
            k = max(3, (self.size // 10) | 1)  # SimCLR: kernel 10% of the image side, odd
            ops.append(K.RandomGaussianBlur((k, k), sigma=(0.1, 2.0), p=cfg.blur_p))
        if cfg.solarize_p > 0:
            ops.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=cfg.solarize_p))
        self.augment = K.AugmentationSequential(*ops) if ops else None

    def one_view(self, images: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        x = images.float().div_(255.0)  # (B, C, H, W) in [0, 1]
        x = random_resized_crop_flip(x, self.size, tuple(cfg.crop_scale),
                                     flip_p=cfg.flip_p)  # (B, C, S, S)
        if self.jitter_1ch:
            s = cfg.jitter_strength  # SimCLR's s: brightness = contrast = 0.8 s
            x = brightness_contrast(x, 0.8 * s, 0.8 * s, cfg.jitter_p)
        if self.augment is not None:
            x = self.augment(x)
        return self.preprocessing.normalize(x)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.dtype != torch.uint8:
            raise TypeError(f"views take uint8 images, got {images.dtype}")
        return self.one_view(images), self.one_view(images)
