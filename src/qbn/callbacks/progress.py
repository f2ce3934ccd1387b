"""Progress a user can see anywhere: the rich bar on a terminal; without one (a pipe, CI, a SLURM
or submitit log) a plain line per epoch, and one every few minutes inside a long epoch, with the
epoch, step, loss, accuracy, images per second and the time left."""

from __future__ import annotations

import logging
import sys
import time

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ProgressBar, RichProgressBar

log = logging.getLogger("qbn.progress")


def progress_bar(every_s: float = 180.0, terminal: bool | None = None) -> ProgressBar:
    """RichProgressBar when standard output is a terminal, else PlainProgress (`terminal` forces one)."""
    on_terminal = sys.stdout.isatty() if terminal is None else terminal
    return RichProgressBar() if on_terminal else PlainProgress(every_s)


def _clock(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _detached(value):
    return value.detach() if isinstance(value, torch.Tensor) else value


class PlainProgress(ProgressBar):
    """One log line per epoch, and one every `every_s` seconds within an epoch."""

    def __init__(self, every_s: float = 180.0):
        super().__init__()
        self.every_s = float(every_s)
        self._enabled = True
        self._fit_start = self._last_line = 0.0
        self._epoch_start = 0.0
        self._images = 0
        self._loss_sum, self._acc_sum, self._seen = 0.0, 0.0, 0
        self._first_step = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_start = time.monotonic()
        self._first_step = trainer.global_step  # a resumed run: time left from this run's own pace

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = self._last_line = time.monotonic()
        self._images, self._loss_sum, self._acc_sum, self._seen = 0, 0.0, 0.0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        self._images += len(x)
        if isinstance(outputs, dict) and "loss" in outputs:  # running means over this epoch's batches
            # summed as tensors, read only when a line is written: float() here would wait for
            # the GPU at every training step
            self._loss_sum = self._loss_sum + _detached(outputs["loss"])
            self._acc_sum = self._acc_sum + _detached(outputs.get("acc", float("nan")))
            self._seen += 1
        now = time.monotonic()
        if self._enabled and now - self._last_line >= self.every_s:
            self._last_line = now
            n = max(self._seen, 1)
            log.info("%s batch %d/%s loss %.4f acc %.4f%s", self._position(trainer), batch_idx + 1, self._batches(),
                     float(self._loss_sum) / n, float(self._acc_sum) / n, self._pace(trainer, now))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._enabled:
            return
        m = trainer.callback_metrics
        parts = [self._position(trainer)]
        for key, label in (("train/loss_epoch", "loss"), ("train/acc", "acc"), ("val/acc", "val/acc")):
            if key in m:
                parts.append(f"{label} {float(m[key]):.4f}")
        log.info("%s%s", " ".join(parts), self._pace(trainer, time.monotonic()))

    def _batches(self) -> str:
        total = self.total_train_batches
        return str(int(total)) if total != float("inf") else "?"

    def _position(self, trainer: pl.Trainer) -> str:
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        total = trainer.estimated_stepping_batches
        steps = f"{trainer.global_step}/{int(total)}" if total != float("inf") else str(trainer.global_step)
        return f"epoch {trainer.current_epoch + 1}/{max_epochs} step {steps}"

    def _pace(self, trainer: pl.Trainer, now: float) -> str:
        """images/s in this epoch, elapsed time, and the time left at this run's pace so far."""
        rate = self._images / max(now - self._epoch_start, 1e-9)
        done = trainer.global_step - self._first_step
        total = trainer.estimated_stepping_batches
        left = ""
        if done > 0 and total != float("inf"):
            left = f", {_clock((now - self._fit_start) / done * max(total - trainer.global_step, 0))} left"
        return f"; {rate:.0f} images/s, {_clock(now - self._fit_start)} elapsed{left}"
