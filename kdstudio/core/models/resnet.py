"""CIFAR-style ResNets (He et al. 2016, the 6n+2 family): resnet8 … resnet110, and the 4×-wide resnet8x4/32x4.

`width` is the channel count of the first stage (16 for resnetN, 64 for the x4 nets; stages double it twice);
`depth` is the total depth 6n+2 (any other value is rounded down to the nearest valid one, at least 8).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and an identity (or 1×1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem conv → three stages of n BasicBlocks (stride 1, 2, 2) → global average pool → linear."""

    def __init__(self, in_channels: int, num_classes: int, depth: int, stem: int, widths: tuple[int, int, int]):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        stages, cin = [], stem
        for i, w in enumerate(widths):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x))


def valid_depth(depth: int) -> int:
    """The nearest valid 6n+2 depth at or below `depth` (at least 8)."""
    return max(8, (depth - 2) // 6 * 6 + 2)


def image_shape(arch: str, input_shape: tuple) -> tuple[int, int, int]:
    """Check that `input_shape` is (C, H, W) and return it; flat inputs raise a ConfigError naming the arch."""
    if len(input_shape) != 3:
        raise ConfigError(f"Architecture '{arch}' needs image inputs (channels, height, width); this data has "
                          f"shape {tuple(input_shape)}. Use 'mlp' for flat features.")
    return tuple(input_shape)


def resnet_builder(arch: str, default_width: int, default_depth: int, stem_ratio: float = 1.0):
    """A zoo builder for one named ResNet: width/depth 0 take the named defaults."""
    def build(num_classes: int, input_shape: tuple, width: int = 0, depth: int = 0) -> nn.Module:
        c, _, _ = image_shape(arch, input_shape)
        w = width or default_width
        d = valid_depth(depth or default_depth)
        return CifarResNet(c, num_classes, d, max(1, round(w * stem_ratio)), (w, 2 * w, 4 * w))
    build.__doc__ = f"CIFAR ResNet '{arch}' (default width {default_width}, depth {default_depth})."
    return build


# name -> (default width, default depth, stem ratio); resnet8x4/32x4 as in CRD/mdistiller: stem 32, stages 64-256.
RESNETS = {f"resnet{d}": (16, d, 1.0) for d in (8, 14, 20, 32, 44, 56, 110)}
RESNETS.update({"resnet8x4": (64, 8, 0.5), "resnet32x4": (64, 32, 0.5)})
