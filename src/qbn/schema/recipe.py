"""The training recipe's groups: trainer (the keys qbn's YAML sets; any other Lightning Trainer
argument joins with +trainer.KEY=VALUE), optimizer and scheduler (one schema per option: their
keys differ)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, List, Optional  # noqa: UP035  OmegaConf reads these annotations

from omegaconf import MISSING

from .fields import num


@dataclass
class TrainerSchema:
    EXTRA_KEYS: ClassVar[bool] = True     # any other Trainer argument: +trainer.KEY=VALUE

    _target_: str = MISSING
    max_epochs: int = num(ge=1)           # -1 would be Lightning's "train forever"
    accelerator: str = MISSING
    devices: Any = MISSING                # 1, -1, [0, 1] or "auto"
    precision: Any = MISSING              # 32-true, bf16-mixed, 32, ...
    log_every_n_steps: int = num(ge=1)
    num_sanity_val_steps: int = MISSING
    gradient_clip_val: Optional[float] = num(ge=0, null=True)  # noqa: UP045
    deterministic: Any = MISSING          # a bool or "warn"
    enable_model_summary: bool = MISSING
    limit_train_batches: Any = num(ge=0, null=True)   # a count (int) or a share (float)
    limit_val_batches: Any = num(ge=0, null=True)
    limit_test_batches: Any = num(ge=0, null=True)
    fast_dev_run: Any = MISSING           # a bool or a number of batches


@dataclass
class DDPTrainerSchema(TrainerSchema):
    num_nodes: int = num(ge=1)
    strategy: Any = MISSING
    sync_batchnorm: Any = MISSING         # a bool, resolved from the accelerator


@dataclass
class OptimizerSchema:
    _target_: str = MISSING
    _partial_: bool = MISSING
    name: str = MISSING
    lr: float = num(gt=0)


@dataclass
class AdamSchema(OptimizerSchema):
    betas: List[float] = MISSING  # noqa: UP006
    weight_decay: float = num(ge=0)
    weight_decay_binary: Optional[float] = num(ge=0, null=True)  # noqa: UP045  per kind of parameter; null: weight_decay
    weight_decay_scale: Optional[float] = num(ge=0, null=True)  # noqa: UP045
    weight_decay_bn: Optional[float] = num(ge=0, null=True)  # noqa: UP045
    weight_decay_fp: Optional[float] = num(ge=0, null=True)  # noqa: UP045


@dataclass
class SGDSchema(OptimizerSchema):
    momentum: float = num(ge=0, le=1)
    nesterov: bool = MISSING
    weight_decay: float = num(ge=0)
    weight_decay_binary: Optional[float] = num(ge=0, null=True)  # noqa: UP045
    weight_decay_scale: Optional[float] = num(ge=0, null=True)  # noqa: UP045
    weight_decay_bn: Optional[float] = num(ge=0, null=True)  # noqa: UP045
    weight_decay_fp: Optional[float] = num(ge=0, null=True)  # noqa: UP045


@dataclass
class SchedulerSchema:
    _target_: str = MISSING
    _partial_: bool = MISSING
    name: str = MISSING


@dataclass
class CosineSchema(SchedulerSchema):
    warmup_epochs: Any = num(ge=0)        # epochs, whole or not
    min_lr_ratio: float = num(ge=0, le=1)


@dataclass
class StepSchema(SchedulerSchema):
    milestones: List[Any] = MISSING  # noqa: UP006  epochs; fractions of max_epochs when < 1
    gamma: float = num(gt=0)
    warmup_epochs: Any = num(ge=0)
