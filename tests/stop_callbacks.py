"""Callbacks the tests attach through the callbacks: config, as a user's own would be."""

from __future__ import annotations

import os
import signal

import pytorch_lightning as pl


class SigtermAtFirstBatch(pl.Callback):
    """Send this process SIGTERM after the first training batch (a cluster's time limit in epoch 1)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.current_epoch == 0 and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)


class SigtermAtEpochFromEnv(pl.Callback):
    """Send this process SIGTERM at the first batch of epoch $QBN_TEST_SIGTERM_EPOCH (when set), so
    that a resumed run with the same callbacks trains on."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if os.environ.get("QBN_TEST_SIGTERM_EPOCH") == str(trainer.current_epoch) and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)
