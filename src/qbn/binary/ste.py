"""Sign with the straight-through estimator (docs/study.md: sign(0) = +1)."""

from __future__ import annotations

import torch

from ..schema.choices import STE_MODES


def sign(w: torch.Tensor) -> torch.Tensor:
    """sign(w) in {-1, +1} with sign(0) = +1 (also for -0.0), same dtype as w, no gradient."""
    # torch.sign is 0 at 0; the sign of sign(w) + 1/2 maps {-1, 0, +1} to {-1, +1, +1}. Three
    # plain float kernels: on a CPU about 15x faster than torch.where on a bool mask.
    return torch.sign(w).add_(0.5).sign_()


def clip_mask(w: torch.Tensor) -> torch.Tensor:
    """1.0 where |w| <= 1, else 0.0 (the clipped STE's gradient mask), same dtype as w."""
    return w.abs().le_(1)


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor, clipped: bool) -> torch.Tensor:
        ctx.clipped = clipped
        if clipped:
            ctx.save_for_backward(w)
        return sign(w)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if ctx.clipped:
            (w,) = ctx.saved_tensors
            grad = grad * clip_mask(w)
        return grad, None


def sign_ste(w: torch.Tensor, ste: str = "clipped") -> torch.Tensor:
    """Forward sign(w); backward passes the gradient unchanged (identity) or where |w| <= 1 (clipped)."""
    if ste not in STE_MODES:
        raise ValueError(f"unknown STE '{ste}': choose one of {', '.join(STE_MODES)}")
    return _SignSTE.apply(w, ste == "clipped")
