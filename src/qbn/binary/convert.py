"""Turn a full-precision backbone into a BWN by module swap (the policy lives here, never in
a backbone). The original weight Parameters are kept, so latent weights stay the state."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .grouped import group_binarization
from .layers import BINARY_LAYERS, BinaryConv2d, BinaryLinear


@dataclass
class BinaryPolicy:
    """Which layers become binary. Defaults follow docs/study.md: first conv and classifier stay
    full precision; 1x1 shortcut (downsample) convs are binarized unless `shortcuts` is off.
    `grouped` binarizes layers of equal fan-in together in training (same numbers, fewer kernels:
    qbn.binary.grouped); off, each layer binarizes its own weight."""

    scaling: str = "xnor"
    ste: str = "clipped"
    first_conv: bool = False
    classifier: bool = False
    shortcuts: bool = True
    grouped: bool = True


def _is_shortcut(conv: nn.Conv2d) -> bool:
    return conv.kernel_size == (1, 1)


def binarize(model: nn.Module, policy: BinaryPolicy) -> nn.Module:
    """Swap nn.Conv2d (and, if asked, the classifier nn.Linear) for binary layers, in place."""
    convs = [(n, m) for n, m in model.named_modules() if type(m) is nn.Conv2d]
    linears = [(n, m) for n, m in model.named_modules() if type(m) is nn.Linear]
    chosen: dict[str, nn.Module] = {}
    for i, (name, conv) in enumerate(convs):
        if i == 0 and not policy.first_conv:
            continue
        if _is_shortcut(conv) and not policy.shortcuts:
            continue
        chosen[name] = BinaryConv2d.from_conv(conv, policy.scaling, policy.ste)
    if policy.classifier and linears:
        name, linear = linears[-1]
        chosen[name] = BinaryLinear.from_linear(linear, policy.scaling, policy.ste)
    for name, layer in chosen.items():
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, layer)
    if chosen and policy.grouped:
        group_binarization(model)
    return model


def binary_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every binary layer of `model` by its qualified name, in definition order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, BINARY_LAYERS)}


def binary_param_count(model: nn.Module) -> int:
    """N: the number of binarized (latent) weights."""
    return sum(m.weight.numel() for m in binary_layers(model).values())
