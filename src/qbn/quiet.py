"""Quiet by default: what libraries print because of how qbn uses them is not the user's concern.
Each filter names one message exactly, so a user's own warnings (and every other one) still show."""

from __future__ import annotations

import logging
import warnings

# Lightning's rank-zero notices that advertise its cloud products, or restate qbn's own setup
_LIGHTNING_NOTICES = ("💡 Tip:", "Trainer already configured with model summary callbacks")
# Warnings raised inside Lightning and torch by the calls qbn makes (not by anything a user wrote)
_LIBRARY_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",          # Lightning 2.6 on torch >= 2.10
    r"Checkpoint directory .* exists and is not empty",           # a resumed run's own checkpoints
    r"The '(train|val|test)_dataloader' does not have many workers",  # in-memory datasets need none
    # DDP: one per layer and statistic of the instruments, which read the weights every rank holds
    # alike (syncing them would change nothing); the run's own losses still warn
    r"It is recommended to use `self\.log\('(weights|signs)/",
)


def _not_a_notice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_LIGHTNING_NOTICES)


def quiet_libraries() -> None:
    """Install the filters (idempotent)."""
    for pattern in _LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                 "lightning_utilities.core.rank_zero"):
        logger = logging.getLogger(name)
        if _not_a_notice not in logger.filters:
            logger.addFilter(_not_a_notice)
