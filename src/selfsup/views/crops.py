"""Crop views (SimCLR, Chen et al. 2020, sec. 3 and appendix A), batched on tensors.

Every sample of a batch gets its own random crop, flip, jitter, grayscale, blur and solarization
parameters; the batch never leaves the device it is on and never goes through PIL.
"""

from __future__ import annotations

import kornia.augmentation as K
import numpy as np
import torch
from torch import nn

from ..backbones.preprocessing import Preprocessing
from .config import ViewConfig
from .geometric import random_resized_crop_flip
from .photometric import brightness_contrast, solarize


class CropAugment(nn.Module):
    """One augmented crop per sample: uint8 (B, C, H, W) -> float (B, C, size, size),
    normalized by ``preprocessing``.

    Crop, flip, one-channel jitter and solarization are batched tensor code (geometric.py,
    photometric.py: several times faster than kornia on small images); colour jitter with
    saturation and hue, grayscale and blur are kornia's.
    """

    def __init__(self, preprocessing: Preprocessing, config: ViewConfig, size: int,
                 scale: tuple[float, float]):
        super().__init__()
        self.config, self.preprocessing, self.size, self.scale = config, preprocessing, size, scale
        s, c = config.jitter_strength, preprocessing.channels
        sc = s if config.color_strength is None else config.color_strength  # saturation, hue
        self.jitter_1ch = config.jitter_p > 0 and s > 0 and c == 1
        ops: list[nn.Module] = []
        if config.jitter_p > 0 and (s > 0 or sc > 0) and c == 3:
            ops.append(K.ColorJitter(0.8 * s, 0.8 * s, 0.8 * sc, 0.2 * sc, p=config.jitter_p))
        if c == 3 and config.grayscale_p > 0:
            ops.append(K.RandomGrayscale(p=config.grayscale_p))
        if config.blur_p > 0:
            k = max(3, (size // 10) | 1)  # SimCLR: kernel 10% of the image side, odd
            ops.append(K.RandomGaussianBlur((k, k), sigma=(0.1, 2.0), p=config.blur_p))
        self.augment = K.AugmentationSequential(*ops) if ops else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.preprocessing.normalize(self.unnormalized(images))

    def unnormalized(self, images: torch.Tensor) -> torch.Tensor:
        """The augmented crops before normalization: float (B, C, size, size) in [0, 1] (the
        random-field views transform them further before normalizing)."""
        cfg = self.config
        x = images.float().div_(255.0)  # (B, C, H, W) in [0, 1]
        x = random_resized_crop_flip(x, self.size, tuple(self.scale),
                                     flip_p=cfg.flip_p)  # (B, C, S, S)
        if self.jitter_1ch:
            s = cfg.jitter_strength  # SimCLR's s: brightness = contrast = 0.8 s
            x = brightness_contrast(x, 0.8 * s, 0.8 * s, cfg.jitter_p)
        if self.augment is not None:
            x = self.augment(x)
        if cfg.solarize_p > 0:
            x = solarize(x, cfg.solarize_p)  # last, as in BYOL's view pipeline
        return x


def _side(ratio: float, preprocessing: Preprocessing, pixels: int | None = None) -> int:
    return pixels or max(1, round(ratio * preprocessing.input_size))


def _check_uint8(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8:
        raise TypeError(f"views take uint8 images, got {images.dtype}")


class ViewMaker(nn.Module):
    """What the trainer asks of every view maker beside ``forward``: before each step it hands
    over the training progress (``set_progress``), and the time budget asks what a step costs
    at a given progress, relative to a step at the end of training (``relative_cost``). A view
    maker of one fixed size needs neither: these defaults are that case."""

    def set_progress(self, progress: float) -> None:
        """Training progress in [0, 1], before each step."""

    def relative_cost(self, progress: np.ndarray) -> np.ndarray:
        """A step's cost at each ``progress`` as a fraction of the final steps' cost."""
        return np.ones_like(np.asarray(progress, dtype=float))


class TwoCropViews(ViewMaker):
    """uint8 (B, C, H, W) -> two float views (B, C, S, S) (SimCLR, MoCo, Barlow Twins).

    With ``config.min_crop_ratio`` the side S follows FFCV's progressive resizing: ``side_at``.
    """

    def __init__(self, preprocessing: Preprocessing, config: ViewConfig | None = None):
        super().__init__()
        self.config = config or ViewConfig()
        self.preprocessing = preprocessing
        self.size = _side(self.config.crop_ratio, preprocessing, self.config.crop_size)
        self.start_size = self.size
        if self.config.min_crop_ratio is not None:
            self.start_size = _side(self.config.min_crop_ratio, preprocessing)
            if self.start_size > self.size:
                raise ValueError(f"view setting min_crop_ratio gives {self.start_size} px "
                                 f"crops, above the final {self.size} px: progressive resizing "
                                 "grows the crops, so it must be the smaller")
        self.crop = CropAugment(preprocessing, self.config, self.size, self.config.crop_scale)

    def side_at(self, progress: np.ndarray) -> np.ndarray:
        """The global crops' side (pixels) at training ``progress``: ``start_size`` until the
        ramp starts, linear to ``size`` over the ramp, then ``size`` (FFCV's
        ``get_resolution``, rounded to whole pixels instead of multiples of 32)."""
        start, end = self.config.resolution_ramp
        side = np.interp(progress, [start, end], [self.start_size, self.size])
        return np.rint(side).astype(int)

    def set_progress(self, progress: float) -> None:
        self.crop.size = int(self.side_at(progress))

    def relative_cost(self, progress: np.ndarray) -> np.ndarray:
        # a convolution's FLOPs grow with the pixels; the step's fixed costs (optimizer, heads)
        # do not shrink, so this overstates the savings of small crops. TimeBudget therefore
        # measures again once the crops have reached full size.
        return (self.side_at(progress) / self.size) ** 2

    def one_view(self, images: torch.Tensor) -> torch.Tensor:
        return self.crop(images)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_uint8(images)
        return self.crop(images), self.crop(images)


class OneCropViews(TwoCropViews):
    """uint8 (B, C, H, W) -> one float view (B, C, S, S) (MAE: crop and flip only)."""

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_uint8(images)
        return self.crop(images)


class MultiCropViews(TwoCropViews):
    """Two global crops plus ``small_crops`` small ones (Caron et al. 2020, "Unsupervised
    Learning of Visual Features by Contrasting Cluster Assignments", multi-crop): a list of
    float views, [(B, C, S, S)] * 2 + [(B, C, s, s)] * small_crops. Small crops cost a fraction
    of a global one's FLOPs, which is what makes extra views cheap on a CPU."""

    def __init__(self, preprocessing: Preprocessing, config: ViewConfig | None = None):
        super().__init__(preprocessing, config)
        cfg = self.config
        self.small_size = _side(cfg.small_crop_ratio, preprocessing)
        self.small = CropAugment(preprocessing, cfg, self.small_size, cfg.small_crop_scale)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        _check_uint8(images)
        views = [self.crop(images), self.crop(images)]
        return views + [self.small(images) for _ in range(self.config.small_crops)]


class IdentityViews(ViewMaker):
    """uint8 (B, C, H, W) -> the encoder's own preprocessing, no augmentation (B, C, S, S);
    for a table encoder, raw rows (B, F) -> its preprocessed inputs (B, T)."""

    def __init__(self, preprocessing: Preprocessing, config: ViewConfig | None = None):
        super().__init__()
        self.config = config or ViewConfig(kind="identity")
        self.preprocessing = preprocessing

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.preprocessing.modality == "image":
            _check_uint8(images)
        return self.preprocessing(images)
