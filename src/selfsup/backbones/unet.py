"""The small UNet of Noise2Void (Krull et al. 2019; CSBDeep's ``unet_block`` with n2v's defaults:
depth 2, 32 first channels, two 3x3 convolutions a level with batch norm and ReLU, max pooling,
nearest upsampling and skip concatenation, a linear 1x1 output), an image-to-image model for
the restorer product. Not yet in the backbone registry, whose contract is an encoder's.

Any height and width: the input is padded by reflection to a multiple of 2^depth and the output
cropped back, so a restorer runs on each image at its own size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_block(cin: int, cout: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers, nn.ReLU(inplace=True))


class UNet(nn.Module):
    """(B, C, H, W) -> (B, C_out, H, W). Level n works at 1/2^n of the size with
    ``first * 2^n`` channels; the bottom at 1/2^depth with ``first * 2^depth``; on the way up
    each level's last convolution halves the channels again, as CSBDeep's block.
    ``residual``: the output is added to the input (channels must match)."""

    def __init__(self, channels: int = 1, out_channels: int | None = None, depth: int = 2,
                 first: int = 32, batch_norm: bool = True, residual: bool = False):
        super().__init__()
        out_channels = out_channels or channels
        if residual and out_channels != channels:
            raise ValueError(f"a residual UNet maps {channels} channels to as many, not "
                             f"{out_channels}")
        if depth < 1 or first < 1:
            raise ValueError(f"a UNet needs depth >= 1 and first >= 1, got {depth}, {first}")
        self.depth, self.residual = depth, residual
        width = [first * 2 ** n for n in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = channels
        for n in range(depth):
            self.down.append(nn.Sequential(conv_block(cin, width[n], batch_norm),
                                           conv_block(width[n], width[n], batch_norm)))
            cin = width[n]
        half = width[max(0, depth - 1)]
        self.bottom = nn.Sequential(conv_block(cin, width[depth], batch_norm),
                                    conv_block(width[depth], half, batch_norm))
        self.up = nn.ModuleList()
        for n in reversed(range(depth)):
            out = width[max(0, n - 1)]
            self.up.append(nn.Sequential(conv_block(half + width[n], width[n], batch_norm),
                                         conv_block(width[n], out, batch_norm)))
            half = out
        self.head = nn.Conv2d(half, out_channels, 1)

    @property
    def receptive_field(self) -> int:
        """Side of the input square that can reach one output pixel: 3x3 convolutions add
        2 x scale each, a 2x2 pooling 1 x scale (the tiling's overlap must cover half of it)."""
        field, scale = 1, 1
        for _ in range(self.depth):
            field += 2 * 2 * scale + scale  # two convolutions, then the pooling
            scale *= 2
        field += 2 * 2 * scale  # the bottom's two
        for _ in range(self.depth):
            scale //= 2
            field += 2 * 2 * scale
        return field

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = 2 ** self.depth
        pad_h, pad_w = -height % multiple, -width % multiple
        # reflection needs a side larger than the pad; a smaller one is replicated
        mode = "reflect" if min(height, width) > max(pad_h, pad_w) else "replicate"
        h = F.pad(x, (0, pad_w, 0, pad_h), mode=mode) if pad_h or pad_w else x
        skips = []
        for level in self.down:
            h = level(h)
            skips.append(h)
            h = F.max_pool2d(h, 2)
        h = self.bottom(h)
        for level, skip in zip(self.up, reversed(skips), strict=True):
            h = level(torch.cat([F.interpolate(h, scale_factor=2, mode="nearest"), skip], 1))
        out = self.head(h)[..., :height, :width]
        return out + x if self.residual else out
