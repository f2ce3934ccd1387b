"""The run's checkpoints: `best` (top val/acc) and the last one (RunDir.last_ckpt), the state after
every epoch.

Lightning >= 2.6 writes its last checkpoint only when a top-k checkpoint is saved at the same step, so
with save_top_k=1 an epoch that does not improve val/acc left the last checkpoint at an earlier epoch,
and a resume then retrained epochs the run had already counted. Resuming, rewinding and the study
rely on the last checkpoint being the last epoch, whatever Lightning's version does."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from ..rundir import RunDir


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose last checkpoint is written after every epoch (when save_last is set)."""

    writes = (RunDir.CHECKPOINTS,)   # its dirpath (conf/callbacks/base.yaml)
    CHECKPOINT_NAME_LAST = Path(RunDir.LAST_CKPT).stem   # Lightning's own name ("last"), taken from the layout

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
