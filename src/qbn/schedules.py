"""Learning-rate schedules per optimizer step, built from conf/scheduler (each YAML's `_target_` is one
of these, `_partial_: true`): called as schedule(optimizer, trainer) once the Trainer knows how many
steps the run takes. They return a LambdaLR, or None for a constant learning rate."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def run_steps(trainer) -> tuple[int, int]:
    """(optimizer steps of the whole run, steps per epoch) as the Trainer estimates them."""
    total = max(int(trainer.estimated_stepping_batches), 1)
    return total, max(total // max(trainer.max_epochs or 1, 1), 1)


def constant(optimizer: Optimizer, trainer) -> None:
    """No schedule: the optimizer's lr throughout."""
    return None


def cosine(optimizer: Optimizer, trainer, warmup_epochs: float, min_lr_ratio: float) -> LambdaLR:
    """Linear warm-up, then cosine from lr down to lr * min_lr_ratio at the last step."""
    total, per_epoch = run_steps(trainer)
    warmup = int(warmup_epochs * per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min((step - warmup) / max(total - warmup, 1), 1.0)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return LambdaLR(optimizer, factor)


def step(optimizer: Optimizer, trainer, milestones: list[float], gamma: float, warmup_epochs: float) -> LambdaLR:
    """Linear warm-up, then lr * gamma^(milestones passed); a milestone below 1 is a fraction of max_epochs."""
    _, per_epoch = run_steps(trainer)
    epochs = trainer.max_epochs or 1
    warmup = int(warmup_epochs * per_epoch)
    at = [int((m * epochs if m < 1 else m) * per_epoch) for m in milestones]

    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        return gamma ** sum(s >= m for m in at)

    return LambdaLR(optimizer, factor)
