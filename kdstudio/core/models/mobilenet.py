"""A MobileNetV2-style small net for small images (inverted residuals, linear bottlenecks, stride-1 stem).

`width` is the stem's channel count (32 at the paper's ×1.0; the zoo's `mobilenetv2` is ×0.5, width 16): every
stage scales with width/32. `depth` is the number of inverted-residual blocks (17 as in the paper), spread over
the seven stages in the paper's proportions, at least one block per stage.
"""

from __future__ import annotations

from torch import nn

from .resnet import image_shape

# (expansion t, channels c at ×1.0, blocks n, first stride s); CIFAR variant: the 24-channel stage keeps stride 1.
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1))
PAPER_BLOCKS = sum(n for _, _, n, _ in SETTINGS)  # 17


def _ch(c: float) -> int:
    return max(4, int(round(c / 4)) * 4)


class InvertedResidual(nn.Module):
    """1×1 expand → 3×3 depthwise → 1×1 linear projection, with a residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, t: int):
        super().__init__()
        hidden = cin * t
        layers: list[nn.Module] = []
        if t != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(inplace=True), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


def _blocks_per_stage(depth: int) -> list[int]:
    """Spread `depth` blocks over the stages in the paper's proportions (≥ 1 each)."""
    depth = max(len(SETTINGS), depth)
    counts = [max(1, round(n * depth / PAPER_BLOCKS)) for _, _, n, _ in SETTINGS]
    i = 0
    while sum(counts) != depth:  # fix rounding, largest stages first
        order = sorted(range(len(counts)), key=lambda k: -counts[k])
        k = order[i % len(order)]
        if sum(counts) > depth and counts[k] > 1:
            counts[k] -= 1
        elif sum(counts) < depth:
            counts[k] += 1
        i += 1
    return counts


class MobileNetV2(nn.Module):
    """Stem conv3×3 → inverted-residual stages → 1×1 conv to 4× the last stage → pool → linear."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16, depth: int = PAPER_BLOCKS):
        super().__init__()
        mult = width / 32
        stem = _ch(32 * mult)
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False),
                                                 nn.BatchNorm2d(stem), nn.ReLU6(inplace=True))]
        cin = stem
        for (t, c, _, s), n in zip(SETTINGS, _blocks_per_stage(depth)):
            cout = _ch(c * mult)
            for j in range(n):
                layers.append(InvertedResidual(cin, cout, s if j == 0 else 1, t))
                cin = cout
        last = 4 * cin
        layers.append(nn.Sequential(nn.Conv2d(cin, last, 1, bias=False), nn.BatchNorm2d(last),
                                    nn.ReLU6(inplace=True)))
        self.features = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


def build_mobilenetv2(num_classes: int, input_shape: tuple, width: int = 0, depth: int = 0) -> nn.Module:
    """MobileNetV2 ×0.5 for small images (default width 16, depth 17 blocks)."""
    c, _, _ = image_shape("mobilenetv2", input_shape)
    return MobileNetV2(c, num_classes, width or 16, depth or PAPER_BLOCKS)
