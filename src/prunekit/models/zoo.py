"""The built-in models. Each maps images ``[N, C, H, W]`` to class logits; their input size and class
count are arguments (``in_features``, ``in_channels``, ``input_size``, ``num_classes``) that
:func:`~prunekit.models.fit_to_data` fills from the dataset (MNIST by default: 1 x 28 x 28, 10 classes).

Layers carry readable names (``fc1``, ``conv2``, ``bn2``, ``classifier``), so parameter names
such as ``fc1.weight`` appear in masks and reports. Every model is an ``nn.Sequential`` in data
flow order.

Example:
    >>> import torch
    >>> lenet5(in_channels=3, input_size=(32, 40))(torch.zeros(2, 3, 32, 40)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from torch import nn

from .registry import register_model


def _mlp_layers(in_features: int, hidden: Sequence[int], num_classes: int, bias: bool) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    width = in_features
    for i, size in enumerate(hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(width, size, bias=bias)
        layers[f"relu{i}"] = nn.ReLU()
        width = size
    layers["classifier"] = nn.Linear(width, num_classes, bias=bias)
    return nn.Sequential(layers)


@register_model("mlp", "reference MLP 784-1000-1000-500-200-10, ReLU, no biases (2.39M weights)")
def mlp(
    hidden: Sequence[int] = (1000, 1000, 500, 200),
    num_classes: int = 10,
    in_features: int = 784,
    bias: bool = False,
) -> nn.Sequential:
    """The reference study's MLP: ``Flatten -> (Linear -> ReLU) x len(hidden) -> Linear``."""
    return _mlp_layers(in_features, tuple(hidden), num_classes, bias)


@register_model("lenet300", "LeNet-300-100: MLP 784-300-100-10 with biases (266k weights)")
def lenet300(num_classes: int = 10, in_features: int = 784) -> nn.Sequential:
    """LeNet-300-100 (LeCun et al. 1998), the MLP of Han et al. 2015 and the lottery-ticket paper."""
    return _mlp_layers(in_features, (300, 100), num_classes, bias=True)


@register_model("lenet5", "LeNet-5: conv 6-16 (5x5) with max-pooling, then 120-84-10 (62k weights)")
def lenet5(num_classes: int = 10, in_channels: int = 1, input_size: Sequence[int] = (28, 28)) -> nn.Sequential:
    """LeNet-5 in its common modern form (ReLU, max-pooling, padding 2 on the first conv)."""
    height, width = _pooled(input_size, [(5, 2, 2), (2, 0, 2), (5, 0, 1), (2, 0, 2)])
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(in_channels, 6, 5, padding=2), relu1=nn.ReLU(), pool1=nn.MaxPool2d(2),
        conv2=nn.Conv2d(6, 16, 5), relu2=nn.ReLU(), pool2=nn.MaxPool2d(2),
        flatten=nn.Flatten(),
        fc1=nn.Linear(16 * height * width, 120), relu3=nn.ReLU(),
        fc2=nn.Linear(120, 84), relu4=nn.ReLU(),
        classifier=nn.Linear(84, num_classes),
    ))


@register_model("lenet5_caffe", "Caffe's LeNet: conv 20-50 (5x5) with max-pooling, then 500-10 (431k weights)")
def lenet5_caffe(num_classes: int = 10, in_channels: int = 1, input_size: Sequence[int] = (28, 28)) -> nn.Sequential:
    """The LeNet of Caffe's MNIST example, the "LeNet-5" Han et al. 2015/2016 prune and compress (431k weights):
    no activation between the convolutions and their pooling, one ReLU before the classifier."""
    height, width = _pooled(input_size, [(5, 0, 1), (2, 0, 2), (5, 0, 1), (2, 0, 2)])
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(in_channels, 20, 5), pool1=nn.MaxPool2d(2),
        conv2=nn.Conv2d(20, 50, 5), pool2=nn.MaxPool2d(2),
        flatten=nn.Flatten(),
        fc1=nn.Linear(50 * height * width, 500), relu1=nn.ReLU(),
        classifier=nn.Linear(500, num_classes),
    ))


def _pooled(size: Sequence[int], layers: list[tuple[int, int, int]]) -> tuple[int, int]:
    """Spatial size after (kernel, padding, stride) layers (convolutions with stride 1 use it as 1)."""
    out = []
    for n in size:
        for kernel, padding, stride in layers:
            step = stride if kernel == 2 and padding == 0 else 1
            n = (n + 2 * padding - kernel) // step + 1 if step == 1 else n // 2
        out.append(n)
    if min(out) < 1:
        raise ValueError(f"input size {list(size)} is too small for this model")
    return out[0], out[1]


@register_model("convnet", "small CNN with BatchNorm: conv 32-32-64-64 (3x3), 2 pools, fc 128-10")
def convnet(channels: Sequence[int] = (32, 32, 64, 64), hidden: int = 128, num_classes: int = 10,
            in_channels: int = 1, input_size: Sequence[int] = (28, 28)) -> nn.Sequential:
    """A VGG-style CNN for filter pruning: ``(Conv -> BatchNorm -> ReLU)`` blocks, a max-pool
    after every second block, then ``Linear -> ReLU -> Linear``. Convs have no bias (BatchNorm's
    shift plays that role)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    in_ch, (height, width) = in_channels, tuple(input_size)
    for i, out_ch in enumerate(channels, start=1):
        layers[f"conv{i}"] = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        layers[f"bn{i}"] = nn.BatchNorm2d(out_ch)
        layers[f"relu{i}"] = nn.ReLU()
        if i % 2 == 0:
            layers[f"pool{i // 2}"] = nn.MaxPool2d(2)
            height, width = height // 2, width // 2
        in_ch = out_ch
    if min(height, width) < 1:
        raise ValueError(f"input size {list(input_size)} is too small for {len(channels) // 2} poolings")
    layers["flatten"] = nn.Flatten()
    layers["fc1"] = nn.Linear(in_ch * height * width, hidden)
    layers["relu_fc1"] = nn.ReLU()
    layers["classifier"] = nn.Linear(hidden, num_classes)
    return nn.Sequential(layers)
