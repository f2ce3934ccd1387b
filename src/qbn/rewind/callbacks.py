"""Rewinding's callbacks: the trunk saves its rewind points (at chosen epochs and shares of
training), a rewound run fixes its signs at the start of a fresh fit, and `freeze_signs_at` fixes
the current signs at the end of epoch K or after the step that ends a share F of training."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch

from ..binary import binary_layers
from ..rundir import RunDir
from ..signs import model_signs, save_snapshot, share_label, share_snapshot_path, share_step
from .resolved_plan import apply_plan, plan_rewind
from .spec import check_shares, parse_freeze_at
from .trunk import share_checkpoint_path

log = logging.getLogger("qbn.rewind")


class RewindPoints(pl.Callback):
    """The trunk's side of rewinding: `checkpoints/init.ckpt` (the epoch-0 state: weights, BatchNorm
    statistics, scales, with the seed) at the start of a fresh fit, `checkpoints/epoch_JJJ.ckpt`
    (the full training state, so a rewound run continues the schedule) at the end of each epoch J
    in `epochs` (J >= 1), and for each share F in `shares` (0 < F < 1), after optimizer step
    round(F * total steps), `signs/share_F.pt` (the signs, as an epoch snapshot) and
    `checkpoints/share_F.ckpt` (the full training state). Rank zero writes."""

    writes = (RunDir.CHECKPOINTS, RunDir.SIGNS)

    def __init__(self, run_dir: str, epochs: Sequence[int] | None = None, seed: int | None = None,
                 shares: Sequence[float] | None = None):
        self.run_dir = Path(run_dir)
        self.epochs = sorted({int(e) for e in (epochs or []) if int(e) >= 1})
        self.seed = seed
        self.shares = check_shares(shares)
        self._at_step: dict[int, list[float]] = {}   # optimizer step -> the shares it ends
        self._last_global_step = -1

    @property
    def state_key(self) -> str:
        # No state, but older checkpoints hold one under this key (see SignSnapshots.state_key).
        return self._generate_state_key(epochs=tuple(self.epochs))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.ckpt_path is not None or not trainer.is_global_zero:
            return
        path = RunDir(self.run_dir).init_ckpt
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        tmp = path.with_suffix(".tmp")
        torch.save({"state_dict": state, "epoch": 0, "seed": self.seed}, tmp)
        tmp.replace(path)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch in self.epochs:
            trainer.save_checkpoint(RunDir(self.run_dir).epoch_ckpt(epoch))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.shares:
            return
        total = int(trainer.estimated_stepping_batches)
        self._at_step = {}
        for share in self.shares:
            self._at_step.setdefault(share_step(share, total), []).append(share)
        if trainer.is_global_zero:
            RunDir(self.run_dir).update_summary(**{"rewind/total_steps": total, "rewind/share_steps": {
                share_label(f): share_step(f, total) for f in self.shares}})
        self._last_global_step = trainer.global_step
        if trainer.global_step == 0 and 0 in self._at_step:
            self._save_shares(trainer, pl_module, 0)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if not self._at_step or trainer.global_step == self._last_global_step:
            return  # no shares, or no optimizer step on this batch
        self._last_global_step = trainer.global_step
        if trainer.global_step in self._at_step:
            self._save_shares(trainer, pl_module, trainer.global_step)

    def _save_shares(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        signs = model_signs(pl_module.net)
        for share in self._at_step[step]:
            if trainer.is_global_zero and signs:
                save_snapshot(share_snapshot_path(self.run_dir, share), signs, trainer.current_epoch, step=step,
                              share=share)
            trainer.save_checkpoint(share_checkpoint_path(self.run_dir, share))  # every rank calls; rank zero writes


class ApplyRewind(pl.Callback):
    """A rewound run (conf/rewind/rewound.yaml): its plan is resolved when the callback is built,
    before the Trainer (trunk found, signs read, rewind point found); at the start of a fresh fit it
    restores the trunk's epoch-0 state (weights=init) and fixes the signs, and records the plan in
    summary.json. weights=epoch:J continues the trunk's training state: the fit starts from
    `start_checkpoint`. On resuming this run's own checkpoint the model (fixed-sign buffers
    included) is already restored, so nothing is applied again."""

    writes = ()   # summary.json fields only (the run directory's own file, RunDir.CORE)

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
            RunDir(self.run_dir).update_summary(**self.plan.summary())
        resume = self.plan.resume_path
        ckpt = trainer.ckpt_path
        own = ckpt is not None and (resume is None or Path(ckpt).resolve() != resume.resolve())
        if own:
            return
        apply_plan(self.plan, pl_module)
        log.info("rewound from %s: signs %s, weights %s", self.plan.trunk_dir, self.plan.signs_spec.text,
                 self.plan.weights_spec.text)


class FreezeSigns(pl.Callback):
    """`freeze_signs_at`: fix every binary layer's current signs and go on training (magnitudes,
    alpha, BatchNorm and full-precision layers still train); the cheap, restart-free variant of
    rewinding. `at` is an epoch K (the end of epoch K; 0: the start of the fit) or `share:F` (after
    optimizer step round(F * total steps), total = the fit's planned steps). Before that moment the
    run is the unfrozen run. The fixed signs are buffers of the layers, so a resumed run keeps them.
    (`epoch` is the older name of `at`, kept for configs saved with it.)"""

    writes = ()   # summary.json fields only (the run directory's own file, RunDir.CORE)

    def __init__(self, at: int | str | None = None, run_dir: str | None = None, epoch: int | None = None):
        self.at = parse_freeze_at(at if at is not None else epoch)   # a RewindError: one line before training
        self.epoch = self.at.epoch
        self.run_dir = Path(run_dir) if run_dir else None
        self._step: int | None = None            # the optimizer step of a share, known at on_train_start
        self._last_global_step = -1

    @property
    def state_key(self) -> str:
        return self._generate_state_key(epoch=self.epoch if self.at.share is None else self.at.text)

    def _freeze(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for layer in binary_layers(pl_module.net).values():
            layer.fix_signs(layer.signs())
        if self.run_dir is not None and trainer.is_global_zero:
            at = self.epoch if self.at.share is None else self.at.text
            RunDir(self.run_dir).update_summary(freeze_signs_at=at, freeze_signs_step=trainer.global_step)
        log.info("signs fixed at %s (optimizer step %d)", self.at.text, trainer.global_step)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.epoch == 0 and trainer.ckpt_path is None:
            self._freeze(trainer, pl_module)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.at.share is None:
            return
        self._step = share_step(self.at.share, int(trainer.estimated_stepping_batches))
        self._last_global_step = trainer.global_step
        if self._step == 0 and trainer.global_step == 0:
            self._freeze(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if self._step is None or trainer.global_step == self._last_global_step:
            return
        self._last_global_step = trainer.global_step
        if trainer.global_step == self._step:
            self._freeze(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.epoch is not None and self.epoch >= 1 and trainer.current_epoch + 1 == self.epoch:
            self._freeze(trainer, pl_module)



def start_checkpoint(callbacks: list[pl.Callback]) -> Path | None:
    """Where a fresh fit of a rewound run with weights=epoch:J starts (the trunk's state), else None."""
    return next((cb.start_checkpoint for cb in callbacks if isinstance(cb, ApplyRewind)), None)
