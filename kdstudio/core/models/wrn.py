"""Wide ResNets (Zagoruyko & Komodakis 2016) for small images: wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2.

`width` is the channel count of the first stage (16·k for WRN-d-k; stages double it twice); `depth` is the total
depth 6n+4 (other values are rounded down to the nearest valid one, at least 10).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .resnet import image_shape


class WideBlock(nn.Module):
    """Pre-activation block: BN → ReLU → conv3×3 → BN → ReLU → conv3×3, with a 1×1 projection when shapes change."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(F.relu(self.bn2(y)))
        return y + (self.shortcut(o) if self.shortcut is not None else x)


class WideResNet(nn.Module):
    """Stem conv (16 channels) → three stages of n wide blocks (stride 1, 2, 2) → BN → ReLU → pool → linear."""

    def __init__(self, in_channels: int, num_classes: int, depth: int, width: int):
        super().__init__()
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        stages, cin = [], 16
        for i, w in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for j in range(n):
                blocks.append(WideBlock(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
            stages.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = stages
        self.bn = nn.BatchNorm2d(cin)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(self.pool(F.relu(self.bn(x))))


def valid_depth(depth: int) -> int:
    """The nearest valid 6n+4 depth at or below `depth` (at least 10)."""
    return max(10, (depth - 4) // 6 * 6 + 4)


def wrn_builder(arch: str, default_width: int, default_depth: int):
    """A zoo builder for one named WRN: width/depth 0 take the named defaults."""
    def build(num_classes: int, input_shape: tuple, width: int = 0, depth: int = 0) -> nn.Module:
        c, _, _ = image_shape(arch, input_shape)
        return WideResNet(c, num_classes, valid_depth(depth or default_depth), width or default_width)
    build.__doc__ = f"Wide ResNet '{arch}' (default width {default_width}, depth {default_depth})."
    return build


# name -> (default width = 16·k, default depth)
WRNS = {"wrn_16_1": (16, 16), "wrn_16_2": (32, 16), "wrn_40_1": (16, 40), "wrn_40_2": (32, 40)}
