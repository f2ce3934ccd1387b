"""The top-level options of conf/train.yaml (the config groups below them have their own schemas)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional  # noqa: UP035  OmegaConf reads these annotations, not X | None

from omegaconf import MISSING

from ..speed import CHANNELS_LAST, COMPILE
from .fields import num, one_of

# What a run returns to a sweeper when optimized_metric is null (conf/train.yaml leaves it null, so a
# run without a test says nothing unless a metric was asked for).
DEFAULT_METRIC = "test/acc"


@dataclass
class TrainSchema:
    name: str = MISSING
    seed: int = num(ge=0)
    resume: Optional[str] = MISSING  # noqa: UP045
    overwrite: bool = MISSING
    channels_last: Any = one_of(CHANNELS_LAST)   # a bool or a word: OmegaConf has no unions
    compile: Any = one_of(COMPILE)
    allow_tf32: bool = MISSING
    test_after_fit: bool = MISSING
    report: bool = MISSING
    optimized_metric: Optional[str] = MISSING  # noqa: UP045
    # the config groups of the defaults list, each typed by its own schema (or none: callbacks, logger, paths)
    model: Any = MISSING
    scaling: Any = MISSING
    binary: Any = MISSING
    dataset: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    trainer: Any = MISSING
    logger: Any = MISSING
    callbacks: Any = MISSING
    rewind: Any = MISSING
    qbn: Any = MISSING
    paths: Any = MISSING


def optimized_metric(cfg) -> str:
    """The summary value a run returns to a sweeper (hparams_search=optuna maximises it)."""
    return cfg.get("optimized_metric") or DEFAULT_METRIC
