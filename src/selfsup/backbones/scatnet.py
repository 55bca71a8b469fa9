"""A fixed wavelet-scattering front end with a small trainable residual adapter (ScatSimCLR's
encoder: Kinakh et al. 2021, "ScatSimCLR: self-supervised contrastive learning with pretext task
regularization for small-scale datasets", sec. 3; official code github.com/vkinakh/scatsimclr,
``src/models/scatnet_simclr.py``).

Each input channel goes through kymatio's ``Scattering2D`` (Bruna and Mallat 2013) with J scales
and L orientations up to order 2: 1 + J L + L^2 J (J - 1) / 2 maps per channel (81 for J = 2,
L = 8) at 1 / 2^J of the side. Batch norm on those maps, a 3x3 convolution to ``width`` channels
and ``blocks`` residual blocks (torchvision's BasicBlock, as the official ResBlock) make the
adapter; features are its global average pool. The official adapter (``scatsimclr8``: 32 then
4 x 64 then 4 x 128 channels, 4 x 4 pooled and flattened) has ~1.4M weights; ours defaults to
one width of 128 and two blocks (~0.68M, about half of ``resnet10w32``) and pools globally, as
every backbone here does, so the features are ``width``-d.

Sides: the scattering subsamples by 2^J, so a side that is not a multiple of 2^J is *resized*
(bilinear) up to the next multiple before the transform; 28 px (Fashion-MNIST) and 8 px
(digits) are multiples of 4 and pass unchanged (7 x 7 and 2 x 2 maps at J = 2). Resizing keeps
the whole image; padding would shift the content off the subsampling grid's centre.

Cost (CPU, float32, measured with kymatio 0.3 on this 2-core machine shared with other jobs):
the scattering of a 256 x 1 x 28 x 28 batch takes ~0.51 s on one thread and ~0.33 s on two,
about 2 ms per image, mostly FFTs and complex products; it has no weights and runs without
autograd, once per view as part of the batched forward (no per-image Python). The filters are
kept outside the state dict (they are a function of J, L and the side), so ``encoder.safetensors``
holds only the adapter.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from .preprocessing import Preprocessing
from .registry import register_backbone


def scattering_channels(J: int, L: int) -> int:
    """Maps per input channel of a 2-D scattering to order 2: 1 + J L + L^2 J (J - 1) / 2."""
    return 1 + J * L + L * L * J * (J - 1) // 2


def _scattering_2d(J: int, L: int, side: int) -> nn.Module:
    # kymatio.torch also imports the 3-D transform, which needs scipy.special.sph_harm (gone in
    # scipy 1.17); the 2-D frontend alone does not
    from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D

    return ScatteringTorch2D(J=J, shape=(side, side), L=L, max_order=2)


class ScatNetEncoder(nn.Module):
    """Scattering (fixed) -> BN -> conv3x3 -> residual blocks -> global average pool: (B, width)."""

    def __init__(self, preprocessing: Preprocessing, channels: int, J: int = 2, L: int = 8,
                 width: int = 128, blocks: int = 2):
        super().__init__()
        if J < 1 or L < 1 or width < 1 or blocks < 0:
            raise ValueError(f"scatnet needs J >= 1, L >= 1, width >= 1 and blocks >= 0, got "
                             f"J={J}, L={L}, width={width}, blocks={blocks}")
        self.J, self.L = J, L
        self.scatter_channels = channels * scattering_channels(J, L)
        self.scatter_norm = nn.BatchNorm2d(self.scatter_channels)
        self.stem = nn.Sequential(
            nn.Conv2d(self.scatter_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[BasicBlock(width, width) for _ in range(blocks)])
        self.dim = width
        self.preprocessing = preprocessing
        self.config = {"name": "scatnet", "channels": channels, "J": J, "L": L, "width": width,
                       "blocks": blocks}
        # (side, device) -> kymatio module; a plain dict keeps the filters out of state_dict
        self._transforms: dict[tuple[int, str], nn.Module] = {}

    def padded_side(self, side: int) -> int:
        """The side the scattering runs at: the next multiple of 2^J at or above ``side``."""
        step = 2**self.J
        return max(step, math.ceil(side / step) * step)

    @torch.no_grad()
    def scatter(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, H) -> (B, C * K, S / 2^J, S / 2^J), K maps per channel, S the side rounded
        up to a multiple of 2^J. No gradient: the transform is fixed."""
        b, c, h, w = x.shape
        if h != w:
            raise ValueError(f"scatnet takes square images, got {h} x {w}")
        side = self.padded_side(h)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            if side != h:
                x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
            key = (side, str(x.device))
            if key not in self._transforms:
                self._transforms[key] = _scattering_2d(self.J, self.L, side).to(x.device)
            s = self._transforms[key](x.contiguous())  # (B, C, K, S / 2^J, S / 2^J)
        return s.flatten(1, 2)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps: normalized scattering, stem, then each residual block."""
        s = self.scatter_norm(self.scatter(x))
        out = [s, self.stem(s)]
        for block in self.blocks:
            out.append(block(out[-1]))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)[-1].mean(dim=(2, 3))  # (B, width)

    def named_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Globally average-pooled scattering (B, C * K), stem and blocks (B, width) each; the
        last is ``forward(x)``."""
        names = ["scattering", "stem"] + [f"block{i + 1}" for i in range(len(self.blocks))]
        return {k: m.mean(dim=(2, 3)) for k, m in zip(names, self.stages(x), strict=True)}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_transforms"] = {}  # rebuilt on first use; kymatio modules need not travel
        return state


@register_backbone("scatnet", family="scattering")
def build(preprocessing: Preprocessing, *, channels: int, input_size: int | None = None,
          J: int = 2, L: int = 8, width: int = 128, blocks: int = 2, **rest) -> ScatNetEncoder:
    if rest:
        raise ValueError(f"unknown scatnet setting(s) {sorted(rest)}; valid: J, L, width, blocks")
    return ScatNetEncoder(preprocessing, channels, J=J, L=L, width=width, blocks=blocks)
