"""torchvision ResNets with a small-image stem, any input channel count and any width."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from .preprocessing import Preprocessing
from .registry import register_backbone

# name -> (block, blocks per stage, base width); three stages make a trunk without the fourth
# (Selfie's patch network: the first three stages, Trinh et al. 2019)
ARCHITECTURES: dict[str, tuple[type[nn.Module], list[int], int]] = {
    "resnet8w32": (BasicBlock, [1, 1, 1], 32),
    "resnet10w32": (BasicBlock, [1, 1, 1, 1], 32),
    "resnet10w48": (BasicBlock, [1, 1, 1, 1], 48),
    "resnet10": (BasicBlock, [1, 1, 1, 1], 64),
    "resnet18": (BasicBlock, [2, 2, 2, 2], 64),
    "resnet50": (Bottleneck, [3, 4, 6, 3], 64),
}


class ResNetEncoder(nn.Module):
    """A ResNet trunk returning pooled features (B, dim).

    Weights and inputs are channels_last: oneDNN's and cuDNN's fast convolution kernels want it
    (NCHW costs a fifth of a training step here, benchmarks/RESULTS.md).

    ``small_stem`` replaces the 7x7/2 convolution and max-pool by one 3x3/1 convolution, as
    SimCLR does for CIFAR (Chen et al. 2020, appendix B.9): on 28-64 px inputs the ImageNet stem
    throws away most of the image before the first block.
    """

    def __init__(self, arch: str, channels: int, small_stem: bool, preprocessing: Preprocessing):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown ResNet {arch!r}; valid: {sorted(ARCHITECTURES)}")
        block, layers, width = ARCHITECTURES[arch]
        net = ResNet(block, [*layers, 1][:4])  # torchvision builds four stages
        if width != 64 or len(layers) == 3:
            # torchvision fixes the widths at 64-512; rebuild the stages at our width with its
            # own stage builder so the blocks stay torchvision's.
            net.inplanes = width
            net.layer1 = net._make_layer(block, width, layers[0])
            net.layer2 = net._make_layer(block, width * 2, layers[1], stride=2)
            net.layer3 = net._make_layer(block, width * 4, layers[2], stride=2)
            net.layer4 = (net._make_layer(block, width * 8, layers[3], stride=2)
                          if len(layers) == 4 else nn.Identity())
        if small_stem:
            net.conv1 = nn.Conv2d(channels, width, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        else:
            net.conv1 = nn.Conv2d(channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        net.bn1 = nn.BatchNorm2d(width)
        net.fc = nn.Identity()
        self.net = net
        self.dim = width * 2 ** (len(layers) - 1) * block.expansion
        self.num_stages = len(layers)
        self.preprocessing = preprocessing
        self.config = {"name": arch, "channels": channels, "small_stem": small_stem}
        self.channels_last = True  # benchmarks/training_step.py turns it off for its ablation
        self.to(memory_format=torch.channels_last)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps after the stem and after each of the four stages."""
        n = self.net
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        out = [x]
        for layer in (n.layer1, n.layer2, n.layer3, n.layer4)[:self.num_stages]:
            x = layer(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.net.avgpool(self.stages(x)[-1]), 1)  # (B, dim)

    def named_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Globally average-pooled output of the stem and each stage, (B, C_stage) each; the
        last (``layer4``, or ``layer3`` of a three-stage trunk) is ``forward(x)``."""
        names = ("stem", "layer1", "layer2", "layer3", "layer4")[:self.num_stages + 1]
        return {k: m.mean(dim=(2, 3)) for k, m in zip(names, self.stages(x), strict=True)}


def _register(arch: str) -> None:
    @register_backbone(arch, family="resnet")
    def build(preprocessing: Preprocessing, *, channels: int, input_size: int | None = None,
              small_stem: bool | None = None, **rest) -> ResNetEncoder:
        if rest:
            raise ValueError(f"unknown {arch} setting(s) {sorted(rest)}; valid: small_stem")
        # the small-image stem for inputs <= 64 px, unless the config says otherwise
        if small_stem is None:
            small_stem = (input_size or preprocessing.input_size) <= 64
        return ResNetEncoder(arch, channels, small_stem, preprocessing)


for _arch in ARCHITECTURES:
    _register(_arch)
