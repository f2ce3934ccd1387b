"""Kernel statistics of a run: at the end of fit (and every k epochs if asked) write
<run_dir>/kernels.json and figures/kernels_*.png, put the headline figures in summary.json, and
give W&B the tables and images when a W&B logger is attached. Rank zero writes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch

from ..kernels.histograms import (
    entropy,
    is_kernel_tensor,
    layer_histograms,
    most_frequent,
    overall_histogram,
    top_shares,
    uniform_coverage,
)
from ..kernels.read_signs import backbone
from ..kernels.run_stats import summary_fields, write_run_kernels
from ..loggers import wandb_run, wandb_table
from ..rundir import RunDir
from ..signs import model_signs

log = logging.getLogger("qbn.kernels")


class KernelStats(pl.Callback):
    """Write kernel statistics at fit end, and every `every_n_epochs` epochs when > 0; figures=False
    keeps only kernels.json (drawing the figures is most of the cost in short runs and tests)."""

    writes = (RunDir.KERNELS_JSON, RunDir.FIGURES)   # figures/kernels_*.png (figures=true)

    def __init__(self, run_dir: str, every_n_epochs: int = 0, layers: list[str] | None = None, figures: bool = True):
        self.run_dir = Path(run_dir)
        self.every_n_epochs = int(every_n_epochs or 0)
        self.layers = list(layers) if layers else None
        self.figures = bool(figures)

    @property
    def state_key(self) -> str:
        return self._generate_state_key(every_n_epochs=self.every_n_epochs)

    @staticmethod
    def _signs(pl_module: pl.LightningModule) -> dict | None:
        """Signs of every binary layer (the 1x1 ones become kernels.json's not_counted), or None
        when the model has no 3x3 binary conv and so no kernel statistics."""
        signs = model_signs(backbone(pl_module))
        return signs if any(is_kernel_tensor(s) for s in signs.values()) else None

    def _write(self, trainer: pl.Trainer, signs: dict, epoch: int) -> dict:
        stats = write_run_kernels(self.run_dir, signs, self.layers, self.figures, epoch=epoch)
        self._to_wandb(trainer, stats)
        return stats

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        # rank zero only: it alone writes, and logs with rank_zero_only=True (so other ranks need not)
        if not (self.every_n_epochs and epoch % self.every_n_epochs == 0 and trainer.is_global_zero):
            return
        signs = self._signs(pl_module)
        if signs is None:
            return
        if trainer.max_epochs is not None and epoch >= trainer.max_epochs:
            # the last epoch: on_fit_end writes kernels.json, so only the headline figures here
            hist = overall_histogram(layer_histograms(signs))
            overall = {"entropy": entropy(hist), **top_shares(hist, (8,))}
        else:
            overall = self._write(trainer, signs, epoch)["overall"]
        pl_module.log("kernels/entropy", overall["entropy"], rank_zero_only=True)
        pl_module.log("kernels/top8", overall["top8"], rank_zero_only=True)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        signs = self._signs(pl_module)
        if signs is None:
            return
        stats = self._write(trainer, signs, trainer.current_epoch)
        RunDir(self.run_dir).update_summary(**summary_fields(stats))
        o = stats["overall"]
        log.info("kernels: entropy %.2f bits, top-1/8/32 coverage %.1f/%.1f/%.1f %% (uniform 0.2/1.6/6.3 %%)",
                 o["entropy"], 100 * o["top1"], 100 * o["top8"], 100 * o["top32"])

    def _to_wandb(self, trainer: pl.Trainer, stats: dict) -> None:
        """kernels.json as W&B tables and charts: per-layer figures, the overall histogram of the
        512 kernel ids (by rank), top-k coverage against the uniform one, and the figures."""
        loggers = trainer.loggers
        if wandb_run(loggers) is None:
            return
        rows = [[k, s["entropy"], s["top1"], s["top8"], s["top32"], s["distinct"]] for k, s in stats["layers"].items()]
        wandb_table(loggers, "kernels/layers", ["layer", "entropy", "top1", "top8", "top32", "distinct"], rows)
        o = stats["overall"]
        total = max(sum(o["histogram"]), 1)
        ranked = most_frequent(torch.tensor(o["histogram"]), len(o["histogram"])).tolist()
        wandb_table(loggers, "kernels/histogram", ["rank", "kernel_id", "count", "share"],
                    [[r + 1, i, o["histogram"][i], o["histogram"][i] / total] for r, i in enumerate(ranked)],
                    lines={"kernels/histogram_chart": ("rank", "share")})
        uniform = uniform_coverage(len(o["coverage"])).tolist()
        wandb_table(loggers, "kernels/coverage", ["k", "coverage", "uniform"],
                    [[k + 1, c, u] for k, (c, u) in enumerate(zip(o["coverage"], uniform, strict=True))],
                    lines={"kernels/coverage_chart": ("k", "coverage")})
        images = [str(self.run_dir / f) for f in stats.get("figures", [])]
        if images:
            import wandb

            wandb_run(loggers).log({"kernels/figures": [wandb.Image(p) for p in images]})
