"""The run's checkpoints: `best.ckpt` (top val/acc) and `last.ckpt`, the state after every epoch.

Lightning >= 2.6 writes `last.ckpt` only when a top-k checkpoint is saved at the same step, so with
save_top_k=1 an epoch that does not improve val/acc left `last.ckpt` at an earlier epoch, and a
resume then retrained epochs the run had already counted. Resuming, rewinding and the study rely on
`last.ckpt` being the last epoch, whatever Lightning's version does."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose `last.ckpt` is written after every epoch (when save_last is set)."""

    def _save_last_if_missed(self, trainer: pl.Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            if self._last_global_step_saved != trainer.global_step or not self.last_model_path:
                self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)
