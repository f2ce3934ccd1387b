"""Distillation (callbacks.distill, always in the config: it acts when qbn.distill.weight > 0): at
the start of fit (fresh or resumed), the BWN of qbn.from_ckpt, rebuilt from its run directory, frozen
and in eval mode, becomes the teacher of BWNModule's training loss (qbn.losses.distillation_loss).
The teacher is no submodule of the model: never in a checkpoint or a packed file."""

from __future__ import annotations

import logging

import pytorch_lightning as pl

from ..checkpoint import model_from_checkpoint
from ..kernels.quantize import QBNSettings

log = logging.getLogger("qbn.qbn")


class Distillation(pl.Callback):
    """Attaches the teacher for training and detaches it at the end of fit."""

    def __init__(self, settings: QBNSettings | dict):
        self.settings = settings if isinstance(settings, QBNSettings) else QBNSettings.from_dict(settings)

    @property
    def active(self) -> bool:
        return self.settings.enabled and self.settings.distill_weight > 0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.active:
            return
        s = self.settings
        teacher, _ = model_from_checkpoint(s.from_ckpt)   # in eval mode; a non-BWN is one clear error
        teacher.requires_grad_(False)
        pl_module.set_teacher(teacher.to(pl_module.device), s.distill_weight, s.distill_temperature)
        log.info("distillation: teacher %s, weight %g, temperature %g", s.from_ckpt, s.distill_weight,
                 s.distill_temperature)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.active:
            pl_module.set_teacher(None)
