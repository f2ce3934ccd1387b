"""The normalisation after a backbone's convs: `batch` (BatchNorm, the usual) or `none`.

`none` is the contrast of claim 1 (docs/study.md): in training mode a BatchNorm after a conv
cancels any positive per-output-channel factor of that conv, so with BN every scaling scheme
(none, xnor, learnable, lq) gives the same outputs. Without it the scale reaches the next layer.
A removed BatchNorm becomes a learnable per-channel bias (zero at the start) and nothing else: a
per-channel scale would cancel alpha again. The first conv (full precision under the default
binary policy) keeps its BatchNorm, which normalises the input once.
"""

from __future__ import annotations

import torch
from torch import nn

from ..schema.choices import NORMS


class ChannelBias(nn.Module):
    """out = x + b, with one learnable b per channel (zero at the start): what is left of a BatchNorm
    when its normalisation and scale are removed."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias.view(1, -1, *([1] * (x.dim() - 2)))

    def extra_repr(self) -> str:
        return f"{self.bias.numel()}"


def check_norm(norm: str) -> str:
    """`norm` if it is one of NORMS, else a ValueError naming the choices."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    return norm


def norm_after_conv(channels: int, norm: str) -> nn.Module:
    """The module after a conv that the binary policy may binarize: BatchNorm2d, or a ChannelBias."""
    return nn.BatchNorm2d(channels) if check_norm(norm) == "batch" else ChannelBias(channels)
