"""Sign snapshots: <run_dir>/signs/epoch_NNN.pt at initialisation and at chosen epoch ends, and
the sign-dynamics analysis (signs.json, E_q in summary.json) when training ends."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl

from ..analysis.sign_dynamics import analyze_run, summary_fields
from ..loggers import wandb_table
from ..rundir import RunDir
from ..signs import list_snapshots, model_signs, save_snapshot, snapshot_path, snapshot_wanted

log = logging.getLogger("qbn.signs")


class SignSnapshots(pl.Callback):
    """Write bit-packed sign snapshots; rank zero only (all ranks hold the same weights).

    Epoch 000 (initialisation) is written at the start of a fresh fit, never on resume (the
    model then holds a later epoch's weights). Epoch e >= 1 is written at the end of epoch e
    when e is a multiple of `every_n_epochs`, is listed in `epochs`, or is the last epoch.
    """

    writes = (RunDir.SIGNS, RunDir.SIGNS_JSON)   # signs.json: the analysis (analyze=true)

    def __init__(self, run_dir: str, every_n_epochs: int = 1, epochs: Sequence[int] | None = None,
                 analyze: bool = True):
        if every_n_epochs is not None and int(every_n_epochs) < 0:
            raise ValueError("sign_snapshots.every_n_epochs must be >= 0 (0: only `epochs` and the last epoch)")
        self.run_dir = Path(run_dir)
        self.every_n_epochs = int(every_n_epochs or 0)
        self.epochs = {int(e) for e in (epochs or [])}
        self.analyze = analyze

    @property
    def state_key(self) -> str:
        # No state any more, but older checkpoints hold one under this key: a resume that finds
        # the key among the callbacks raises no Lightning "add the following callbacks" warning.
        return self._generate_state_key(every_n_epochs=self.every_n_epochs)

    def wanted(self, epoch: int, last: bool) -> bool:
        """Whether the end of `epoch` (1-based) gets a snapshot."""
        return snapshot_wanted(epoch, self.every_n_epochs, self.epochs, last)

    def _save(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> None:
        signs = model_signs(pl_module.net)  # every rank computes (cheap); only rank zero writes
        if trainer.is_global_zero and signs:
            save_snapshot(snapshot_path(self.run_dir, epoch), signs, epoch)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A fresh start writes epoch 000. A run that starts from another run's checkpoint (a
        # rewind to epoch J) writes its starting signs as epoch J; a resume of this run directory
        # (snapshots already there) writes nothing: the model holds a later epoch's weights.
        if trainer.ckpt_path is None:
            self._save(trainer, pl_module, 0)
        elif not list_snapshots(self.run_dir):
            self._save(trainer, pl_module, trainer.current_epoch)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs or trainer.should_stop
        if self.wanted(epoch, last):
            self._save(trainer, pl_module, epoch)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (self.analyze and trainer.is_global_zero and list_snapshots(self.run_dir)):
            return  # nothing to analyse (e.g. a full-precision run has no binary layers)
        try:
            result = analyze_run(self.run_dir)
        except Exception as e:  # noqa: BLE001  an instrument must not fail the run it measures
            log.warning("sign analysis of %s failed: %s", self.run_dir, e)
            return
        overall = result.get("overall") or {}
        metrics = {k: float(v) for k, v in summary_fields(result).items()
                   if v is not None and k != "signs/changed_from_init"}
        if metrics:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
                logger.save()
        if overall:
            to_wandb(trainer.loggers, result)


def to_wandb(loggers, result: dict) -> None:
    """The sign curves of signs.json as W&B tables and line charts: d_e and the stable-sign share by
    epoch (all layers, and per layer), and each layer's sign-freeze epochs E_q."""
    epochs, o, layers = result["epochs"], result["overall"], result["layers"]
    c_e = [None, *o["c_e"]]  # c_e starts at the second snapshot
    wandb_table(loggers, "signs/curves", ["epoch", "d_e", "c_e", "stable_share"],
                [[e, d, c, st] for e, d, c, st in zip(epochs, o["d_e"], c_e, o["stable_fraction"], strict=True)],
                lines={"signs/d_e_chart": ("epoch", "d_e"), "signs/stable_share_chart": ("epoch", "stable_share")})
    wandb_table(loggers, "signs/stable_share_by_layer", ["layer", "epoch", "stable_share"],
                [[name, e, v] for name, d in layers.items() for e, v in zip(epochs, d["stable_fraction"], strict=True)])
    qs = [k for k in o if k.startswith("E_")]
    wandb_table(loggers, "signs/freeze_epochs", ["layer", "weights", *qs],
                [[name, d["num_weights"], *(d.get(q) for q in qs)] for name, d in layers.items()],
                bars={f"signs/freeze_epoch_{q}_chart": ("layer", q) for q in qs[1:2]})
