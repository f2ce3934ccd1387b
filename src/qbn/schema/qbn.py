"""The qbn group (conf/qbn/off.yaml, docs/kernels.md): QBN's options. qbn.kernels.quantize.QBNSettings
is this dataclass with the rules between options (bits or budget, learned or progressive, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional  # noqa: UP035  OmegaConf reads these annotations, not X | None

from omegaconf import MISSING

from .choices import ALLOCATIONS, CODEBOOK_MODES, LEARNED_INITS, METHODS, PROGRESSIVE_ORDERS
from .fields import num, one_of


@dataclass
class DistillSchema:
    weight: float = num(ge=0, le=1)
    temperature: float = num(gt=0)


@dataclass
class QBNSchema:
    bits: Optional[int] = num(ge=1, le=9, null=True)  # noqa: UP045
    budget: Optional[float] = num(gt=0, le=9, null=True)  # noqa: UP045
    allocation: str = one_of(ALLOCATIONS)
    codebook: str = one_of(CODEBOOK_MODES)
    layers: Optional[List[str]] = MISSING  # noqa: UP006, UP045
    from_ckpt: Optional[str] = MISSING  # noqa: UP045
    refresh_every: int = num(ge=0)
    progressive: bool = MISSING
    progressive_order: str = one_of(PROGRESSIVE_ORDERS)
    progressive_every: Optional[int] = num(ge=1, null=True)  # noqa: UP045
    fp_reference: Optional[str] = MISSING  # noqa: UP045
    method: str = one_of(METHODS)
    learned_init: str = one_of(LEARNED_INITS)
    learned_lr: Optional[float] = num(gt=0, null=True)  # noqa: UP045
    learned_reseed_every: int = num(ge=0)
    distill: DistillSchema = field(default_factory=DistillSchema)
