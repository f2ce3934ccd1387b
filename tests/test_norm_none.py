"""Claim 1's contrast: `model.backbone.norm=none` removes the BatchNorm after every conv the binary
policy binarizes (the first conv keeps its own), leaves a per-channel bias, and still trains."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from torch import nn

from qbn.binary import BINARY_LAYERS, BinaryPolicy, binarize
from qbn.errors import ConfigError
from qbn.export.files import export_module
from qbn.export.loader import load
from qbn.models import resnet18, resnet20, resnet32, resnet56, vgg_small
from qbn.models.norm import ChannelBias
from qbn.testing.export import make_module
from qbn.testing.runs import compose_run, tiny
from qbn.train import train

LEAVES = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, ChannelBias, nn.ReLU, nn.MaxPool2d)


def next_after_each_conv(net: nn.Module, image_size: int) -> dict[str, nn.Module]:
    """{conv name: the next module of LEAVES that runs after it in a forward pass} (by call order)."""
    order: list[tuple[str, nn.Module]] = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: order.append((n, mod)))
             for n, m in net.named_modules() if isinstance(m, LEAVES)]
    net.eval()
    with torch.no_grad():
        net(torch.randn(2, 3, image_size, image_size))
    for h in hooks:
        h.remove()
    return {n: order[i + 1][1] for i, (n, m) in enumerate(order[:-1]) if isinstance(m, nn.Conv2d)}


BACKBONES = [(lambda norm: resnet20(norm=norm), 16), (lambda norm: resnet32(norm=norm, shortcut="B"), 16),
             (lambda norm: resnet56(norm=norm), 8), (lambda norm: vgg_small(norm=norm, image_size=16), 16),
             (lambda norm: resnet18(norm=norm, image_size=16), 16)]


@pytest.mark.parametrize("make,size", BACKBONES)
def test_no_batchnorm_directly_after_a_binary_conv(make, size):
    net = binarize(make("none"), BinaryPolicy(scaling="xnor"))
    after = next_after_each_conv(net, size)
    first = next(iter(after))
    assert not isinstance(dict(net.named_modules())[first], BINARY_LAYERS)   # the fp first conv ...
    assert isinstance(after[first], nn.BatchNorm2d)                          # ... keeps its BatchNorm
    binary = {n: m for n, m in after.items() if isinstance(dict(net.named_modules())[n], BINARY_LAYERS)}
    assert binary and all(isinstance(m, ChannelBias) for m in binary.values())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 1
    # the same backbone with norm=batch: a BatchNorm after every binary conv (so the check can fail)
    batch = binarize(make("batch"), BinaryPolicy(scaling="xnor"))
    after = next_after_each_conv(batch, size)
    assert all(isinstance(after[n], nn.BatchNorm2d) for n in binary)


def test_channel_bias_adds_a_learnable_bias_per_channel():
    cb = ChannelBias(3)
    with torch.no_grad():
        cb.bias.copy_(torch.tensor([1.0, -2.0, 0.5]))
    x = torch.randn(2, 3, 4, 4)
    out = cb(x)
    for c, b in enumerate((1.0, -2.0, 0.5)):
        assert torch.allclose(out[:, c], x[:, c] + b)
    assert [n for n, _ in cb.named_parameters()] == ["bias"]
    with pytest.raises(ValueError, match="norm must be one of batch, none"):
        resnet20(norm="layer")


@pytest.mark.parametrize("scaling", ["none", "xnor"])
def test_a_few_steps_stay_finite(scaling):
    torch.manual_seed(0)
    net = binarize(resnet20(num_classes=10, in_channels=1, norm="none"), BinaryPolicy(scaling=scaling))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    for _ in range(3):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert math.isfinite(loss.item())
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_a_bad_norm_is_one_clear_message(tmp_path):
    with pytest.raises(ConfigError, match="model.backbone.norm='group' is not valid: choose one of batch, none"):
        train(compose_run(tmp_path / "r", tiny("trainer.accelerator=cpu", "model.backbone.norm=group")))


@pytest.mark.slow
@pytest.mark.parametrize("scaling", ["none", "xnor"])
def test_norm_none_trains_on_digits_without_nan(tmp_path, scaling):
    run = tmp_path / scaling
    s = train(compose_run(run, tiny("trainer.accelerator=cpu", "dataset=digits", "model.backbone.norm=none",
                                    f"scaling={scaling}")))
    assert s["status"] == "completed" and math.isfinite(s["test/acc"])
    with open(run / "metrics.csv", newline="") as f:
        losses = [float(r[k]) for r in csv.DictReader(f) for k in ("train/loss_epoch", "val/loss") if r.get(k)]
    assert losses and all(math.isfinite(v) for v in losses)


def test_a_norm_none_model_round_trips_through_a_packed_file(tmp_path):
    module, cfg = make_module("model.backbone.norm=none")
    with torch.no_grad():
        for m in module.net.modules():
            if isinstance(m, ChannelBias):
                m.bias.normal_()
    path = tmp_path / "m.qbn"
    export_module(module, cfg, path)
    x = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(load(path)(x), module(x))
