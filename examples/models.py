"""Your own models, for the command line: ``--model examples/models.py:small_resnet``.

A model builder is any function returning an ``nn.Module``; ``--model-arg KEY=VALUE`` passes its
arguments. prunekit records the reference in checkpoints but never imports it when loading one:
pass the same ``--model`` again to load a checkpoint of it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    """A residual block; the shortcut is a strided 1x1 convolution when the shape changes."""

    def __init__(self, channels_in: int, channels_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = nn.Identity() if stride == 1 and channels_in == channels_out else nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.shortcut(x))


class SmallResNet(nn.Module):
    def __init__(self, in_channels: int, width: int, classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        self.stage1 = Block(width, width)
        self.stage2 = Block(width, 2 * width, stride=2)
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x):
        x = self.stage2(self.stage1(self.stem(x)))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def small_resnet(in_channels: int = 1, width: int = 16, classes: int = 10) -> nn.Module:
    """A two-stage residual CNN for small images of any size."""
    return SmallResNet(in_channels, width, classes)


def example_batch() -> torch.Tensor:
    """One batch for tracing the model from the command line (``--example-inputs``)."""
    return torch.randn(2, 1, 8, 8)
