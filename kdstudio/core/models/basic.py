"""Small built-in architectures: an MLP and a plain CNN, each with width and depth knobs."""

from __future__ import annotations

import math

from torch import nn


class MLP(nn.Module):
    """Flatten → `depth` × (Linear → ReLU) of `width` units → Linear to classes."""

    def __init__(self, in_features: int, num_classes: int, width: int = 256, depth: int = 2):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        prev = in_features
        for _ in range(depth):
            layers += [nn.Linear(prev, width), nn.ReLU(inplace=True)]
            prev = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(prev, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


class CNN(nn.Module):
    """`depth` × (Conv3×3 → BatchNorm → ReLU), channels doubling from `width`, pooling while the image is
    larger than 2×2, then global average pooling and a linear classifier."""

    def __init__(self, in_channels: int, image_hw: tuple[int, int], num_classes: int, width: int = 32,
                 depth: int = 3):
        super().__init__()
        blocks: list[nn.Module] = []
        ch, h, w = in_channels, *image_hw
        for i in range(depth):
            out = width * (2 ** min(i, 3))
            block = [nn.Conv2d(ch, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            if i > 0 and min(h, w) >= 4:
                block.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            blocks.append(nn.Sequential(*block))
            ch = out
        self.features = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(ch, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


def build_mlp(num_classes: int, input_shape: tuple, width: int = 0, depth: int = 0) -> nn.Module:
    """MLP for any input shape (inputs are flattened); defaults width 256, depth 2."""
    return MLP(math.prod(input_shape), num_classes, width or 256, depth if depth else 2)


def build_cnn(num_classes: int, input_shape: tuple, width: int = 0, depth: int = 0) -> nn.Module:
    """CNN for image inputs (C, H, W); defaults width 32, depth 3."""
    from ..errors import ConfigError
    if len(input_shape) != 3:
        raise ConfigError(f"Architecture 'cnn' needs image inputs (channels, height, width); this data has "
                          f"shape {tuple(input_shape)}. Use 'mlp' for flat features.")
    c, h, w = input_shape
    return CNN(c, (h, w), num_classes, width or 32, depth or 3)
