"""Augmentation settings, validated where the user gives them (config file, --view)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

VIEW_KINDS = ("two_crop", "one_crop", "multi_crop", "identity", "random_field")


@dataclass
class ViewConfig:
    """Which views a method gets (``kind``, from the registry in ``selfsup.views``) and their
    strengths. Defaults follow SimCLR's CIFAR recipe, scaled for small images."""

    kind: str = "two_crop"
    crop_scale: tuple[float, float] = (0.2, 1.0)
    # Side of the training crops as a fraction of the encoder's input size (``crop_size``
    # overrides it in pixels). Training below the test resolution costs fewer FLOPs per view,
    # and random-resized-crop training tests better at a higher resolution anyway (Touvron et
    # al. 2019, "Fixing the train-test resolution discrepancy").
    crop_ratio: float = 1.0
    crop_size: int | None = None
    # Progressive resizing (FFCV, Leclerc et al. 2023): the training crops start at
    # ``min_crop_ratio`` of the input side and keep it until ``resolution_ramp[0]`` of training,
    # then grow linearly to the crop size above, reached at ``resolution_ramp[1]``. FFCV's
    # ImageNet configs ramp over epochs 29-34 of 40 (0.725-0.85). None: one size throughout.
    min_crop_ratio: float | None = None
    resolution_ramp: tuple[float, float] = (0.725, 0.85)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    jitter_strength: float = 0.5  # SimCLR's s: brightness=contrast=saturation=0.8s, hue=0.2s
    # s for saturation and hue alone (3-channel inputs), None: jitter_strength. Lets brightness
    # and contrast be strengthened without also strengthening the colour changes.
    color_strength: float | None = None
    grayscale_p: float = 0.2      # 3-channel inputs only
    blur_p: float = 0.0           # SimCLR turns blur off for 32 px images
    solarize_p: float = 0.0
    # multi_crop (Caron et al. 2020, SwAV; DINO's local crops): this many extra small crops
    small_crops: int = 6
    small_crop_ratio: float = 0.5
    small_crop_scale: tuple[float, float] = (0.05, 0.4)
    # random_field (Mansfield et al. 2023): two_crop's views, then per-pixel Gaussian random
    # field warps and colour shifts. ``field_strength`` scales every amplitude at once (0 gives
    # two_crop's views exactly; views/random_field.py lists the amplitudes at 1);
    # ``field_correlation`` is the fields' correlation length as a fraction of the view's side
    # (inf: one global affine and colour transform per view).
    field_strength: float = 1.0
    field_correlation: float = 0.25

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ViewConfig:
        """Build and validate; raises ValueError naming the setting and what is allowed."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown view setting(s) {unknown}; valid: "
                             f"{', '.join(sorted(known))}")
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.kind not in VIEW_KINDS:
            raise ValueError(f"unknown view kind {self.kind!r}; valid: {', '.join(VIEW_KINDS)}")
        for name in ("crop_scale", "small_crop_scale"):
            lo_hi = getattr(self, name)
            if (not isinstance(lo_hi, (list, tuple)) or len(lo_hi) != 2
                    or not all(isinstance(v, (int, float)) for v in lo_hi)
                    or not 0 < lo_hi[0] <= lo_hi[1] <= 1):
                raise ValueError(f"view setting {name} must be two numbers [low, high] with "
                                 f"0 < low <= high <= 1, got {lo_hi!r}")
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"view setting {name} is a probability in [0, 1], got "
                                 f"{getattr(self, name)!r}")
        for name in ("crop_ratio", "small_crop_ratio"):
            if not 0 < getattr(self, name) <= 4:
                raise ValueError(f"view setting {name} must be in (0, 4], got "
                                 f"{getattr(self, name)!r}")
        if self.min_crop_ratio is not None and not (
                isinstance(self.min_crop_ratio, (int, float)) and 0 < self.min_crop_ratio <= 4):
            raise ValueError(f"view setting min_crop_ratio must be in (0, 4] or null, got "
                             f"{self.min_crop_ratio!r}")
        ramp = self.resolution_ramp
        if (not isinstance(ramp, (list, tuple)) or len(ramp) != 2
                or not all(isinstance(v, (int, float)) for v in ramp)
                or not 0 <= ramp[0] <= ramp[1] <= 1):
            raise ValueError(f"view setting resolution_ramp must be two fractions of training "
                             f"[start, end] with 0 <= start <= end <= 1, got {ramp!r}")
        if self.crop_size is not None and self.crop_size < 1:
            raise ValueError(f"view setting crop_size must be >= 1 pixel, got {self.crop_size}")
        if not (isinstance(self.field_strength, (int, float))
                and 0 <= self.field_strength < float("inf")):
            raise ValueError(f"view setting field_strength must be a finite number >= 0, got "
                             f"{self.field_strength!r}")
        if not (isinstance(self.field_correlation, (int, float)) and self.field_correlation >= 0):
            raise ValueError(f"view setting field_correlation must be >= 0 (a fraction of the "
                             f"image side; inf for a global transform), got "
                             f"{self.field_correlation!r}")
        if self.small_crops < 0 or self.jitter_strength < 0 or (self.color_strength or 0) < 0:
            raise ValueError("view settings small_crops, jitter_strength and color_strength must "
                             "be >= 0")
