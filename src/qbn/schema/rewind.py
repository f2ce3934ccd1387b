"""rewind.*: the options of the rewind group's four files. Their keys differ (rewind=off has signs
only; an experiment may set rewind.trunk for a later rewind=rewound), so this schema is checked on
the composed config (check_config) instead of typing the group at composition: a config keeps only
the keys its files set. The grammar inside a value (rewind.signs=epoch:K) is qbn.rewind.spec's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional  # noqa: UP035  OmegaConf reads these annotations, not X | None

from omegaconf import MISSING


@dataclass
class RewindSchema:
    signs: Optional[str] = MISSING  # noqa: UP045
    weights: Optional[str] = MISSING  # noqa: UP045
    trunk: Optional[str] = MISSING  # noqa: UP045
    save_weights: List[int] = MISSING  # noqa: UP006
    save_shares: List[float] = MISSING  # noqa: UP006
    freeze_signs_at: Optional[str] = MISSING  # noqa: UP045  an epoch K or share:F (qbn.rewind.spec.parse_freeze_at)
    inherited: Optional[str] = MISSING  # noqa: UP045
