"""Sign with the straight-through estimator (STUDY.md: sign(0) = +1)."""

from __future__ import annotations

import torch

STE_MODES = ("clipped", "identity")


def sign(w: torch.Tensor) -> torch.Tensor:
    """sign(w) in {-1, +1} with sign(0) = +1, same dtype as w, no gradient."""
    return torch.where(w >= 0, 1.0, -1.0).to(w.dtype)


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
            grad = grad * (w.abs() <= 1).to(grad.dtype)
        return grad, None


def sign_ste(w: torch.Tensor, ste: str = "clipped") -> torch.Tensor:
    """Forward sign(w); backward passes the gradient unchanged (identity) or where |w| <= 1 (clipped)."""
    if ste not in STE_MODES:
        raise ValueError(f"unknown STE '{ste}': choose one of {', '.join(STE_MODES)}")
    return _SignSTE.apply(w, ste == "clipped")
