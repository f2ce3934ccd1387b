"""The study's own top-level options (conf/study/study.yaml); the runs' options are train.yaml's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional  # noqa: UP035  OmegaConf reads these annotations, not X | None

from omegaconf import MISSING

from .choices import STUDY_LOGGERS
from .fields import num, one_of


@dataclass
class StudySchema:
    dir: str = MISSING
    stages: List[str] = MISSING  # noqa: UP006
    only: Optional[str] = MISSING  # noqa: UP045
    jobs: int = num(ge=1)
    train: List[str] = MISSING  # noqa: UP006
    logger: str = one_of(STUDY_LOGGERS)
    wandb_project: str = MISSING
    launcher: str = MISSING
    submitit: Dict[str, Any] = MISSING  # noqa: UP006
    report: bool = MISSING
    recipes: Dict[str, List[str]] = MISSING  # noqa: UP006
    paths: Dict[str, Any] = MISSING  # noqa: UP006
    scale: Any = MISSING
