"""Rewinding's callbacks: the trunk saves its rewind points, a rewound run fixes its signs at the
start of a fresh fit, and `freeze_signs_at` fixes the current signs at the end of epoch K."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch

from ..binary import binary_layers
from ..rundir import update_summary
from .plan import apply_plan, plan_rewind

log = logging.getLogger("qbn.rewind")


class RewindPoints(pl.Callback):
    """The trunk's side of rewinding: `checkpoints/init.ckpt` (the epoch-0 state: weights, BatchNorm
    statistics, scales, with the seed) at the start of a fresh fit, and `checkpoints/epoch_JJJ.ckpt`
    (the full training state, so a rewound run continues the schedule) at the end of each epoch J
    in `epochs` (J >= 1). Rank zero writes (trainer.save_checkpoint)."""

    def __init__(self, run_dir: str, epochs: Sequence[int] | None = None, seed: int | None = None):
        self.run_dir = Path(run_dir)
        self.epochs = sorted({int(e) for e in (epochs or []) if int(e) >= 1})
        self.seed = seed

    @property
    def state_key(self) -> str:
        # No state, but older checkpoints hold one under this key (see SignSnapshots.state_key).
        return self._generate_state_key(epochs=tuple(self.epochs))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.ckpt_path is not None or not trainer.is_global_zero:
            return
        path = self.run_dir / "checkpoints" / "init.ckpt"
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        tmp = path.with_suffix(".tmp")
        torch.save({"state_dict": state, "epoch": 0, "seed": self.seed}, tmp)
        tmp.replace(path)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch in self.epochs:
            trainer.save_checkpoint(self.run_dir / "checkpoints" / f"epoch_{epoch:03d}.ckpt")


class ApplyRewind(pl.Callback):
    """A rewound run (conf/rewind/rewound.yaml): its plan is resolved when the callback is built,
    before the Trainer (trunk found, signs read, rewind point found); at the start of a fresh fit it
    restores the trunk's epoch-0 state (weights=init) and fixes the signs, and records the plan in
    summary.json. weights=epoch:J continues the trunk's training state: the fit starts from
    `start_checkpoint`. On resuming this run's own checkpoint the model (fixed-sign buffers
    included) is already restored, so nothing is applied again."""

    def __init__(self, trunk: str, signs: str, weights: str = "init", seed: int = 0, output_dir: str = "outputs",
                 run_dir: str | None = None, inherited: str | None = None):
        self.plan = plan_rewind(trunk, signs, weights, seed, output_dir, run_dir, inherited)
        self.run_dir = run_dir

    @property
    def start_checkpoint(self) -> Path | None:
        """The trunk's full training state a fresh fit continues from (weights=epoch:J), else None."""
        return self.plan.resume_path

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.run_dir is not None and trainer.is_global_zero:
            update_summary(self.run_dir, **self.plan.summary())
        own = trainer.ckpt_path is not None and (self.plan.resume_path is None
                                                 or Path(trainer.ckpt_path).resolve() != self.plan.resume_path.resolve())
        if own:
            return
        apply_plan(self.plan, pl_module)
        log.info("rewound from %s: signs %s, weights %s", self.plan.trunk_dir, self.plan.signs_spec.text,
                 self.plan.weights_spec.text)


class FreezeSigns(pl.Callback):
    """`freeze_signs_at: K`: fix every binary layer's current signs at the end of epoch K (K = 0: at
    the start of the fit) and go on training; the cheap, restart-free variant of rewinding. The
    fixed signs are buffers of the layers, so a resumed run keeps them."""

    def __init__(self, epoch: int, run_dir: str | None = None):
        if int(epoch) < 0:
            raise ValueError("freeze_signs_at must be an epoch >= 0")
        self.epoch = int(epoch)
        self.run_dir = Path(run_dir) if run_dir else None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(epoch=self.epoch)

    def _freeze(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for layer in binary_layers(pl_module.net).values():
            layer.fix_signs(layer.signs())
        if self.run_dir is not None and trainer.is_global_zero:
            update_summary(self.run_dir, freeze_signs_at=self.epoch)
        log.info("signs fixed at the end of epoch %d", self.epoch)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.epoch == 0 and trainer.ckpt_path is None:
            self._freeze(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.epoch >= 1 and trainer.current_epoch + 1 == self.epoch:
            self._freeze(trainer, pl_module)



def start_checkpoint(callbacks: list[pl.Callback]) -> Path | None:
    """Where a fresh fit of a rewound run with weights=epoch:J starts (the trunk's state), else None."""
    return next((cb.start_checkpoint for cb in callbacks if isinstance(cb, ApplyRewind)), None)
