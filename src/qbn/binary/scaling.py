"""Per-output-channel scaling factors alpha for W_hat = alpha * B (docs/study.md).

Each scheme is a small module called with the latent weight; it returns alpha shaped to
broadcast over the weight (O x 1 x 1 x 1 for a conv), or None for no scaling. The schemes are
named (not imported by path) because a packed model file records the scheme by name.
"""

from __future__ import annotations

import torch
from torch import nn


def _channel_mean_abs(w: torch.Tensor) -> torch.Tensor:
    # Summed as an O x n matrix in the weight's logical order, whatever its memory format, so a
    # channels_last layer gets the same alpha, bit for bit, as an NCHW one (and as grouped binarization).
    return w.abs().reshape(w.shape[0], -1).mean(dim=1).view(-1, *([1] * (w.dim() - 1)))


class NoScaling(nn.Module):
    """alpha = 1: the binary signs alone (BatchNorm after the conv absorbs the scale)."""

    name = "none"

    def forward(self, w: torch.Tensor) -> torch.Tensor | None:
        return None


class XnorScaling(nn.Module):
    """XNOR-Net BWN: alpha_o = mean(|W_o|), differentiable through W."""

    name = "xnor"

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return _channel_mean_abs(w)


class LearnableScaling(nn.Module):
    """alpha is a parameter trained by gradient, initialised from mean |W_o|."""

    name = "learnable"

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.alpha = nn.Parameter(_channel_mean_abs(weight.detach()).clone())

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.alpha


class LQScaling(nn.Module):
    """LQ-Nets' quantization-error minimisation for one bit.

    With B = sign(W), the least-squares basis min_v ||v B_o - W_o||^2 is v = mean |W_o|; LQ-Nets
    updates its basis as a moving average of that solution during training (no gradient).
    """

    name = "lq"

    def __init__(self, weight: torch.Tensor, momentum: float = 0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("alpha", _channel_mean_abs(weight.detach()).clone())

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                self.alpha.lerp_(_channel_mean_abs(w.detach()), self.momentum)
        return self.alpha


SCALINGS = {cls.name: cls for cls in (NoScaling, XnorScaling, LearnableScaling, LQScaling)}


def make_scaling(name: str, weight: torch.Tensor) -> nn.Module:
    """The scaling module called `name` for a layer whose latent weight is `weight`."""
    if name not in SCALINGS:
        raise ValueError(f"unknown scaling '{name}': choose one of {', '.join(SCALINGS)}")
    cls = SCALINGS[name]
    return cls(weight) if cls in (LearnableScaling, LQScaling) else cls()
