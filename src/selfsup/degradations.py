"""Image degradations under one spec syntax (DESIGN.md): the noise a restorer trains against
on a clean source, the corrupted test sets it is scored on, and later the severities of the
robustness metrics. Not `views/corruption.py`, which is SiT's masking of normalized views.

    gaussian:25              additive white Gaussian noise, sigma on the 0-255 scale
    poisson-gaussian:30,5    shot noise at 30 photons for full scale, plus Gaussian sigma 5

Images are floats in [0, 1] (an 8- or 16-bit image divided by its largest value), (C, H, W) or
(B, C, H, W). Noise is added in float before any quantization and nothing is clipped: the
denoising literature's noisy test sets (Noise2Void's BSD68 at sigma 25 among them) keep the
values that fall outside [0, 1]. A test set's noise is drawn from one generator per image,
seeded by (seed, the image's index), so an image gets the same noise whatever batch, order or
machine it is degraded in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

DEGRADATIONS: dict[str, Callable[..., Degradation]] = {}
# each name's spec, for the error that lists them
FORMS: dict[str, str] = {}


class Degradation:
    """A degradation: ``degradation(images, generator)`` -> degraded images, same shape."""

    spec: str

    def __call__(self, images: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError


def register(name: str, form: str) -> Callable[[type], type]:
    def wrap(cls: type) -> type:
        DEGRADATIONS[name], FORMS[name] = cls, form
        return cls
    return wrap


def _noise(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


@register("gaussian", "gaussian:SIGMA (0-255 scale, e.g. gaussian:25)")
@dataclass(frozen=True)
class Gaussian(Degradation):
    """y = x + n, n ~ N(0, (sigma / 255)^2) per value: the additive white Gaussian noise of the
    denoising benchmarks (BSD68 and Set12 at sigma 15, 25, 50)."""

    sigma: float

    def __post_init__(self) -> None:
        if not self.sigma >= 0:
            raise ValueError(f"gaussian noise needs sigma >= 0, got {self.sigma:g}")

    @property
    def spec(self) -> str:
        return f"gaussian:{self.sigma:g}"

    def __call__(self, images: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        return images + (self.sigma / 255) * _noise(images, generator)


@register("poisson-gaussian", "poisson-gaussian:PEAK,SIGMA (photons at full scale; read-noise "
          "sigma on the 0-255 scale, e.g. poisson-gaussian:30,5)")
@dataclass(frozen=True)
class PoissonGaussian(Degradation):
    """y = Poisson(peak * x) / peak + n, n ~ N(0, (sigma / 255)^2): a camera's signal-dependent
    shot noise, Var = x / peak, plus signal-independent read noise (Foi et al. 2008's
    Poisson-Gaussian model, in photons). Values below 0 count no photons."""

    peak: float
    sigma: float = 0.0

    def __post_init__(self) -> None:
        if not self.peak > 0 or not self.sigma >= 0:
            raise ValueError(f"poisson-gaussian noise needs peak > 0 and sigma >= 0, got "
                             f"{self.peak:g},{self.sigma:g}")

    @property
    def spec(self) -> str:
        return f"poisson-gaussian:{self.peak:g},{self.sigma:g}"

    def __call__(self, images: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        photons = torch.poisson(self.peak * images.clamp(min=0), generator=generator)
        return photons / self.peak + (self.sigma / 255) * _noise(images, generator)


def parse_degradation(spec: str) -> Degradation:
    """``"gaussian:25"`` -> `Gaussian(25)`; a spec not understood is one error listing the valid
    forms."""
    forms = "; ".join(FORMS.values())
    m = re.fullmatch(r"\s*([a-z-]+)\s*:\s*([0-9.eE+-]+(?:\s*,\s*[0-9.eE+-]+)*)\s*", str(spec))
    if not m or m.group(1) not in DEGRADATIONS:
        raise ValueError(f"degradation {spec!r} not understood; valid: {forms}")
    try:
        values = [float(v) for v in m.group(2).split(",")]
        return DEGRADATIONS[m.group(1)](*values)
    except TypeError:
        raise ValueError(f"degradation {spec!r}: wrong number of values; valid: "
                         f"{FORMS[m.group(1)]}") from None
    except ValueError as e:
        if "could not convert" in str(e):
            raise ValueError(f"degradation {spec!r} not understood; valid: {forms}") from None
        raise


def image_generator(seed: int, index: int) -> torch.Generator:
    """The generator of image ``index`` of a test set degraded with ``seed``: the two mixed by
    numpy's SeedSequence, so neighbouring seeds and indices draw unrelated noise."""
    state = np.random.SeedSequence((seed, index)).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def degrade_seeded(images: Sequence[torch.Tensor], degradation: Degradation | str,
                   seed: int = 0, indices: Sequence[int] | None = None) -> list[torch.Tensor]:
    """Degrade test images (each (C, H, W), sizes may differ) with noise drawn from one
    generator per image (`image_generator`): image ``indices[i]`` (default: its position) gets
    the same noise in any batch or order. The noise is drawn on the CPU and moved to the
    image's device, so a GPU evaluation scores the same noisy set."""
    d = parse_degradation(degradation) if isinstance(degradation, str) else degradation
    indices = range(len(images)) if indices is None else indices
    if len(indices) != len(images):
        raise ValueError(f"{len(images)} images but {len(indices)} indices")
    return [d(x.detach().cpu().float(), image_generator(seed, int(i))).to(x.device)
            for x, i in zip(images, indices, strict=True)]
