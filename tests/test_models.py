"""Backbones: parameter counts against the reference definitions, shapes, small-image stems."""

from __future__ import annotations

import pytest
import torch
import torchvision

from qbn.models import resnet18, resnet20, resnet32, resnet34, resnet56, vgg_small


def _count(m):
    return sum(p.numel() for p in m.parameters())


def _cifar_resnet_params(n: int, classes: int = 10, cin: int = 3) -> int:
    """He et al.'s CIFAR ResNet (option A shortcuts) counted layer by layer."""
    total = cin * 16 * 9 + 2 * 16                 # stem conv + BN
    prev = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += prev * width * 9 + 2 * width + width * width * 9 + 2 * width
            prev = width
    return total + 64 * classes + classes


@pytest.mark.parametrize(("fn", "n"), [(resnet20, 3), (resnet32, 5), (resnet56, 9)])
def test_cifar_resnet_counts(fn, n):
    assert _count(fn(num_classes=10, in_channels=3)) == _cifar_resnet_params(n)


def test_resnet20_count_is_the_papers():
    assert _count(resnet20(num_classes=10, in_channels=3)) == 269_722  # the paper's 0.27M


def test_torchvision_resnets_match_reference():
    assert _count(resnet18(num_classes=1000, in_channels=3, image_size=224)) == 11_689_512
    assert _count(resnet34(num_classes=1000, in_channels=3, image_size=224)) == _count(torchvision.models.resnet34())


def test_small_stem_for_small_images():
    m = resnet18(num_classes=10, in_channels=1, image_size=28)
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_vgg_small_count():
    convs = 3 * 128 * 9 + 128 * 128 * 9 + 128 * 256 * 9 + 256 * 256 * 9 + 256 * 512 * 9 + 512 * 512 * 9
    bn = 2 * (128 + 128 + 256 + 256 + 512 + 512)
    assert _count(vgg_small(num_classes=10, in_channels=3, image_size=32)) == convs + bn + 512 * 16 * 10 + 10


def test_shortcut_b_has_1x1_convs():
    m = resnet20(num_classes=10, in_channels=3, shortcut="B")
    assert any(isinstance(x, torch.nn.Conv2d) and x.kernel_size == (1, 1) for x in m.modules())
    with pytest.raises(ValueError):
        resnet20(shortcut="C")


@pytest.mark.parametrize(("init", "factor"), [("kaiming", 2.0), ("torch", 1 / 3)])
def test_cifar_resnet_init_scale(init, factor):
    torch.manual_seed(0)
    conv = resnet56(num_classes=10, in_channels=3, init=init).layer3[0].conv2  # 64 x 64 x 3 x 3
    fan_in = conv.weight[0].numel()
    expected_std = (factor / fan_in) ** 0.5  # He normal: 2 / fan_in; PyTorch default: 1 / (3 fan_in)
    assert abs(conv.weight.std().item() / expected_std - 1) < 0.05
    with pytest.raises(ValueError, match="init"):
        resnet20(init="xavier")
