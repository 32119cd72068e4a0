"""Deep CNNs for filter pruning: CIFAR-style ResNets (He et al. 2016) and VGG nets with BatchNorm.

``resnet20`` / ``resnet56`` are the ``6n + 2`` layer ResNets of the CIFAR experiments: a 3x3 stem, three
stages of ``n`` basic blocks at 16, 32 and 64 channels (stride 2 between stages), global average pooling
and a linear classifier. Shortcuts that change shape are a strided 1x1 convolution with BatchNorm (the
paper's option B). Inputs may have 1 or 3 channels and any size (global pooling). ``vgg`` stacks
``Conv -> BatchNorm -> ReLU`` blocks with max-pools in between (configurations 11, 13, 16, 19).

Example:
    >>> import torch
    >>> model = resnet(depth=20, in_channels=1)
    >>> model(torch.zeros(2, 1, 28, 28)).shape, sum(p.numel() for p in model.parameters())
    (torch.Size([2, 10]), 272186)
    >>> vgg(depth=11, width=0.25, in_channels=3)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_model

VGG_CONFIGS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512),
}
"""Channels per conv and ``"M"`` for a 2x2 max-pool (Simonyan & Zisserman's A, B, D, E; the last pool is
replaced by global average pooling)."""


class BasicBlock(nn.Module):
    """Two 3x3 conv + BatchNorm layers and a shortcut (identity, or strided 1x1 conv + BatchNorm)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(channels_out))

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.shortcut(x))


class CifarResNet(nn.Module):
    """The ``6n + 2`` layer ResNet of He et al.'s CIFAR-10 experiments (see the module docstring)."""

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3, width: int = 16):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110...), got {depth}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, channels = [], width
        for stage, out in enumerate((width, 2 * width, 4 * width)):
            layers = []
            for i in range(blocks):
                layers.append(BasicBlock(channels, out, stride=2 if stage and i == 0 else 1))
                channels = out
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


@register_model("resnet", "CIFAR-style ResNet (He et al. 2016), depth 6n+2 (default 20: 0.27M weights)")
def resnet(depth: int = 20, num_classes: int = 10, in_channels: int = 1, width: int = 16) -> nn.Module:
    """ResNet-``depth`` for small images; ``depth=56`` gives ResNet-56. Unit pruning traces it
    (pass ``example_inputs``) so the channels joined by the residual additions go together."""
    return CifarResNet(depth, num_classes, in_channels, width)


@register_model("resnet20", "ResNet-20 (CIFAR-style, 0.27M weights)")
def resnet20(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    return CifarResNet(20, num_classes, in_channels)


@register_model("resnet56", "ResNet-56 (CIFAR-style, 0.86M weights)")
def resnet56(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    return CifarResNet(56, num_classes, in_channels)


@register_model("vgg", "VGG with BatchNorm (depth 11, 13, 16 or 19; width multiplier), global average pooling")
def vgg(depth: int = 11, width: float = 1.0, num_classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """A VGG net of ``Conv -> BatchNorm -> ReLU`` blocks (no conv bias), max-pools between stages, global
    average pooling and a linear classifier; ``width`` scales every layer's channels."""
    if depth not in VGG_CONFIGS:
        raise ValueError(f"depth must be one of {sorted(VGG_CONFIGS)}, got {depth}")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels, conv, pool = in_channels, 0, 0
    for item in VGG_CONFIGS[depth]:
        if item == "M":
            pool += 1
            layers[f"pool{pool}"] = nn.MaxPool2d(2, ceil_mode=True)
            continue
        conv += 1
        out = max(1, round(item * width))
        layers[f"conv{conv}"] = nn.Conv2d(channels, out, 3, padding=1, bias=False)
        layers[f"bn{conv}"] = nn.BatchNorm2d(out)
        layers[f"relu{conv}"] = nn.ReLU()
        channels = out
    layers["pool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    layers["classifier"] = nn.Linear(channels, num_classes)
    return nn.Sequential(layers)
