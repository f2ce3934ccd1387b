"""CIFAR-style ResNets (He et al., 2016, section 4.2): 3 stages of 16/32/64 channels, depth 6n+2.

Shortcut option "A" (the paper's: identity with zero-padded channels, no parameters, 0.27M
params for resnet20) or "B" (1x1 conv + BN on downsampling, the common BWN variant).
`norm="none"` replaces the BatchNorm after every conv but the first with a per-channel bias
(qbn.models.norm): the backbone of claim 1's contrast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .norm import check_norm, norm_after_conv


class _PadShortcut(nn.Module):
    """Option A: subsample by 2 and zero-pad the new channels."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::2, ::2]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: str, norm: str = "batch"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = norm_after_conv(planes, norm)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = norm_after_conv(planes, norm)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                self.shortcut = _PadShortcut(planes - in_planes)
            else:
                self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                                              norm_after_conv(planes, norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3, shortcut: str = "A", width: int = 16,
                 init: str = "torch", norm: str = "batch"):
        super().__init__()
        check_norm(norm)
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)   # the first conv stays full precision: its BatchNorm stays with any norm
        layers, in_planes = [], width
        for i, planes in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride, shortcut, norm))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(in_planes, num_classes)
        # "kaiming": He et al.'s normal init (std sqrt(2 / fan_in)); "torch": PyTorch's default
        # (kaiming_uniform with a = sqrt(5), std sqrt(1 / (3 fan_in)), 2.4x smaller). For a BWN the
        # latent weights' scale against Adam's step size sets how often signs flip.
        if init not in ("kaiming", "torch"):
            raise ValueError(f"init must be 'kaiming' or 'torch', got {init!r}")
        if init == "kaiming":
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def resnet20(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A", init: str = "torch", norm: str = "batch",
             **_) -> CifarResNet:
    return CifarResNet(20, num_classes, in_channels, shortcut, init=init, norm=norm)


def resnet32(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A", init: str = "torch", norm: str = "batch",
             **_) -> CifarResNet:
    return CifarResNet(32, num_classes, in_channels, shortcut, init=init, norm=norm)


def resnet56(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A", init: str = "torch", norm: str = "batch",
             **_) -> CifarResNet:
    return CifarResNet(56, num_classes, in_channels, shortcut, init=init, norm=norm)
