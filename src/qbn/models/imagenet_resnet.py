"""ResNet-18/34 from torchvision's definitions, with a stem chosen by input size.

`stem="imagenet"`: torchvision's 7x7/2 conv + 3x3/2 max-pool (224 px inputs).
`stem="small"`: a 3x3/1 conv and no max-pool, the usual stem for 28-32 px inputs.
`stem="auto"`: small below 64 px, else imagenet.
`norm="none"`: every BatchNorm but the stem's becomes a per-channel bias (qbn.models.norm).
"""

from __future__ import annotations

import torchvision
from torch import nn

from .norm import ChannelBias, check_norm


def _drop_batchnorm(model: nn.Module) -> None:
    """Replace every BatchNorm2d after a block's convs (and the downsample 1x1 convs) by a ChannelBias;
    the stem's `bn1`, after the full-precision first conv, stays."""
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.BatchNorm2d) and name != "bn1":
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, ChannelBias(m.num_features))


def _resnet(builder, num_classes: int, in_channels: int, image_size: int, stem: str, norm: str = "batch") -> nn.Module:
    check_norm(norm)
    model = builder(weights=None, num_classes=num_classes)
    if stem == "auto":
        stem = "small" if image_size < 64 else "imagenet"
    if stem not in ("small", "imagenet"):
        raise ValueError(f"stem must be 'small', 'imagenet' or 'auto', got {stem!r}")
    if stem == "small":
        model.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    if norm == "none":
        _drop_batchnorm(model)
    return model


def resnet18(num_classes: int = 1000, in_channels: int = 3, image_size: int = 224, stem: str = "auto",
             norm: str = "batch", **_) -> nn.Module:
    return _resnet(torchvision.models.resnet18, num_classes, in_channels, image_size, stem, norm)


def resnet34(num_classes: int = 1000, in_channels: int = 3, image_size: int = 224, stem: str = "auto",
             norm: str = "batch", **_) -> nn.Module:
    return _resnet(torchvision.models.resnet34, num_classes, in_channels, image_size, stem, norm)
