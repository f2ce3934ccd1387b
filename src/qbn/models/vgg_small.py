"""VGG-small (LQ-Nets / TWN CIFAR VGG): 2x128, pool, 2x256, pool, 2x512, pool, linear.
Six 3x3 convs, each followed by BatchNorm and ReLU. `norm="none"` keeps the first conv's
BatchNorm and replaces the other five with a per-channel bias (qbn.models.norm)."""

from __future__ import annotations

import torch
from torch import nn

from .norm import check_norm, norm_after_conv


class VGGSmall(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, image_size: int = 32, norm: str = "batch"):
        super().__init__()
        check_norm(norm)
        layers: list[nn.Module] = []
        c = in_channels
        for i, width in enumerate((128, 128, 256, 256, 512, 512)):
            after = nn.BatchNorm2d(width) if i == 0 else norm_after_conv(width, norm)
            layers += [nn.Conv2d(c, width, 3, 1, 1, bias=False), after, nn.ReLU(inplace=True)]
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
            c = width
        self.features = nn.Sequential(*layers)
        side = image_size // 8
        if side < 1:
            raise ValueError(f"vgg_small pools by 8: inputs of {image_size} px are too small (need >= 8)")
        self.classifier = nn.Linear(512 * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def vgg_small(num_classes: int = 10, in_channels: int = 3, image_size: int = 32, norm: str = "batch", **_) -> VGGSmall:
    return VGGSmall(num_classes, in_channels, image_size, norm)
