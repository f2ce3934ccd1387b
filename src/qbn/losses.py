"""Training losses beyond plain cross-entropy (plain PyTorch): knowledge distillation from a
frozen teacher (qbn.distill.*, docs/kernels.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor, weight: float,
                      temperature: float) -> torch.Tensor:
    """Hinton et al. (2015): (1 - w) CE(s, y) + w T^2 KL(softmax(t / T) || softmax(s / T)), the KL
    summed over classes and averaged over the batch (T^2 keeps its gradient's scale independent of T)."""
    ce = F.cross_entropy(student, targets)
    if weight == 0:
        return ce
    t = float(temperature)
    kl = F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher.detach() / t, dim=1),
                  reduction="batchmean", log_target=True)
    return (1 - weight) * ce + weight * t * t * kl
