"""The binary core against direct computations (definitions: docs/study.md)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qbn.binary import (
    BinaryConv2d,
    BinaryLinear,
    BinaryPolicy,
    binarize,
    binary_layers,
    pack_bits,
    sign,
    sign_ste,
    unpack_bits,
)
from qbn.models import resnet18, resnet20


def test_sign_of_zero_is_plus_one():
    w = torch.tensor([-2.0, -0.0, 0.0, 1e-8, -1e-8])
    assert sign(w).tolist() == [-1, 1, 1, 1, -1]


@pytest.mark.parametrize("ste", ["clipped", "identity"])
def test_ste_gradient(ste):
    w = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], requires_grad=True)
    g = torch.arange(1.0, 8.0)
    sign_ste(w, ste).backward(g)
    expected = [gi if (ste == "identity" or abs(wi) <= 1) else 0.0
                for wi, gi in zip(w.tolist(), g.tolist(), strict=True)]
    assert w.grad.tolist() == expected


def test_unknown_ste():
    with pytest.raises(ValueError, match="clipped, identity"):
        sign_ste(torch.ones(2), "foo")


def _conv(seed=0, cin=3, cout=4):
    torch.manual_seed(seed)
    return nn.Conv2d(cin, cout, 3, padding=1, bias=False)


def _alpha_loop(w):
    return torch.tensor([w[o].abs().sum().item() / w[o].numel() for o in range(w.shape[0])])


@pytest.mark.parametrize("scaling", ["none", "xnor", "learnable", "lq"])
def test_binary_conv_matches_direct_conv(scaling):
    conv = _conv()
    w0 = conv.weight.detach().clone()
    layer = BinaryConv2d.from_conv(conv, scaling=scaling)
    assert layer.weight is conv.weight  # the latent Parameter is kept, not copied
    x = torch.randn(2, 3, 5, 5)
    alpha = torch.ones(4) if scaling == "none" else _alpha_loop(w0)
    signs = torch.where(w0 >= 0, 1.0, -1.0)
    expected = F.conv2d(x, alpha.view(-1, 1, 1, 1) * signs, padding=1)
    torch.testing.assert_close(layer(x), expected)


def test_xnor_gradient_includes_alpha_path():
    layer = BinaryConv2d.from_conv(_conv(), scaling="xnor", ste="identity")
    w = layer.weight
    layer.effective_weight().sum().backward()
    # d/dw_i of sum_o alpha_o * sum_j b_oj with alpha_o = mean|w_o|: sum_j b_oj * sign(w_i) / n + alpha_o
    n = w[0].numel()
    for o in range(w.shape[0]):
        s = sign(w[o].detach()).sum()
        expected = s * sign(w[o].detach()) / n + w[o].detach().abs().mean()
        torch.testing.assert_close(w.grad[o], expected)


def test_learnable_alpha_is_trained_parameter():
    layer = BinaryConv2d.from_conv(_conv(), scaling="learnable")
    assert isinstance(layer.scaling.alpha, nn.Parameter)
    torch.testing.assert_close(layer.scaling.alpha.detach().flatten(), _alpha_loop(layer.weight.detach()))
    layer(torch.randn(2, 3, 5, 5)).sum().backward()
    assert layer.scaling.alpha.grad is not None and layer.scaling.alpha.grad.abs().sum() > 0


def test_lq_alpha_follows_moving_average_of_lsq_solution():
    layer = BinaryConv2d.from_conv(_conv(), scaling="lq")
    a0 = layer.scaling.alpha.detach().flatten().clone()
    with torch.no_grad():
        layer.weight.mul_(3)
    layer.train()
    layer(torch.randn(1, 3, 5, 5))
    lsq = _alpha_loop(layer.weight.detach())  # argmin_v ||v sign(w) - w||^2 = mean |w|
    torch.testing.assert_close(layer.scaling.alpha.flatten(), 0.9 * a0 + 0.1 * lsq)
    layer.eval()
    before = layer.scaling.alpha.clone()
    layer(torch.randn(1, 3, 5, 5))
    assert torch.equal(before, layer.scaling.alpha)  # no update in eval


def test_binary_linear():
    torch.manual_seed(0)
    lin = nn.Linear(6, 3)
    layer = BinaryLinear.from_linear(lin, scaling="xnor")
    x = torch.randn(4, 6)
    w = lin.weight.detach()
    expected = x @ (_alpha_loop(w).view(-1, 1) * torch.where(w >= 0, 1.0, -1.0)).T + lin.bias.detach()
    torch.testing.assert_close(layer(x), expected)


def test_policy_default_keeps_first_conv_and_classifier():
    net = resnet20(num_classes=10, in_channels=1, shortcut="B")
    binarize(net, BinaryPolicy())
    names = set(binary_layers(net))
    assert "conv1" not in names and type(net.conv1) is nn.Conv2d and type(net.fc) is nn.Linear
    assert "layer1.0.conv1" in names and "layer3.2.conv2" in names
    assert "layer2.0.shortcut.0" in names  # 1x1 shortcuts binarized by default
    assert len(names) == 18 + 2


def test_policy_options():
    net = resnet18(num_classes=10, in_channels=3, image_size=32)
    binarize(net, BinaryPolicy(shortcuts=False, first_conv=True, classifier=True))
    names = set(binary_layers(net))
    assert "conv1" in names and "fc" in names
    assert not any("downsample" in n for n in names)
    assert isinstance(net.fc, BinaryLinear)


def test_binarize_keeps_parameters():
    net = resnet20(num_classes=10, in_channels=1)
    before = {n: p for n, p in net.named_parameters()}
    binarize(net, BinaryPolicy(scaling="none"))
    after = dict(net.named_parameters())
    assert before.keys() == after.keys() and all(before[k] is after[k] for k in before)


def test_pack_bits_hand_example_and_round_trip():
    bits = torch.tensor([1, 0, 0, 0, 0, 0, 0, 1, 1, 1], dtype=torch.bool)
    packed = pack_bits(bits)
    assert packed.tolist() == [0b10000001, 0b00000011]  # element 8i+j -> bit j of byte i (LSB first)
    assert torch.equal(unpack_bits(packed, 10), bits)
    rnd = torch.rand(3, 5, 7) > 0.5
    assert torch.equal(unpack_bits(pack_bits(rnd), rnd.numel()).view(3, 5, 7), rnd)
    assert pack_bits(torch.tensor([1, 0, 1, 1, 0, 0, 0, 0, 1], dtype=torch.bool)).tolist() == [1 + 4 + 8, 1]


@pytest.mark.parametrize("shape", [(1,), (7,), (8,), (9,), (16, 16, 3, 3), (3, 5, 1, 1)])
def test_pack_round_trip_sizes(shape):
    bits = torch.rand(shape, generator=torch.Generator().manual_seed(len(shape))) < 0.5
    packed = pack_bits(bits)
    assert packed.dtype == torch.uint8 and packed.numel() == (bits.numel() + 7) // 8
    assert torch.equal(unpack_bits(packed, bits.numel()).view(shape), bits)


def test_fixed_signs_are_used_and_saved():
    layer = BinaryConv2d.from_conv(_conv(), scaling="none")
    fixed = torch.rand_like(layer.weight) > 0.5
    layer.fix_signs(fixed)
    torch.testing.assert_close(layer.effective_weight(), fixed.float() * 2 - 1)
    state = layer.state_dict()
    fresh = BinaryConv2d.from_conv(_conv(seed=1), scaling="none")
    fresh.load_state_dict(state)
    assert torch.equal(fresh.signs(), fixed)
