"""Kernel statistics of a run: at the end of fit (and every k epochs if asked) write
<run_dir>/kernels.json and figures/kernels_*.png, put the headline figures in summary.json, and
give W&B the tables and images when a W&B logger is attached. Rank zero writes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl

from ..kernels.analysis import kernel_stats, write_kernel_stats
from ..kernels.figures import write_figures
from ..kernels.sources import live_signs
from ..run import update_summary

log = logging.getLogger("qbn.kernels")


def summary_fields(stats: dict) -> dict:
    """The headline kernel figures for summary.json."""
    o = stats["overall"]
    return {"kernels/entropy": o["entropy"], "kernels/top1": o["top1"], "kernels/top8": o["top8"], "kernels/top32": o["top32"]}


def write_run_kernels(run_dir: str | Path, signs: dict, layers: list[str] | None = None, figures: bool = True,
                      **meta) -> dict:
    """kernels.json + figures (unless figures=False) for `signs` in `run_dir` (shared by the callback and the CLI)."""
    stats = kernel_stats(signs, run_dir=run_dir, **meta)
    write_kernel_stats(run_dir, stats)
    if figures:
        stats["figures"] = [str(p.relative_to(run_dir)) for p in write_figures(stats, Path(run_dir) / "figures", layers)]
        write_kernel_stats(run_dir, stats)
    return stats


class KernelStats(pl.Callback):
    """Write kernel statistics at fit end, and every `every_n_epochs` epochs when > 0; figures=False
    keeps only kernels.json (drawing the figures is most of the cost in short runs and tests)."""

    def __init__(self, run_dir: str, every_n_epochs: int = 0, layers: list[str] | None = None, figures: bool = True):
        self.run_dir = Path(run_dir)
        self.every_n_epochs = int(every_n_epochs or 0)
        self.layers = list(layers) if layers else None
        self.figures = bool(figures)

    @property
    def state_key(self) -> str:
        return self._generate_state_key(every_n_epochs=self.every_n_epochs)

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> dict | None:
        signs = live_signs(pl_module)
        if not signs or not trainer.is_global_zero:
            return None
        stats = write_run_kernels(self.run_dir, signs, self.layers, self.figures, epoch=epoch)
        self._to_wandb(trainer, stats)
        return stats

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if self.every_n_epochs and epoch % self.every_n_epochs == 0:
            signs = live_signs(pl_module)
            if signs:
                from ..kernels.analysis import layer_histograms, overall_histogram
                from ..kernels.stats import entropy, top_shares

                hist = overall_histogram(layer_histograms(signs))
                pl_module.log("kernels/entropy", entropy(hist), rank_zero_only=True)
                pl_module.log("kernels/top8", top_shares(hist, (8,))["top8"], rank_zero_only=True)
                last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
                if not last:
                    self._write(trainer, pl_module, epoch)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        stats = self._write(trainer, pl_module, trainer.current_epoch)
        if stats:
            update_summary(self.run_dir, **summary_fields(stats))
            o = stats["overall"]
            log.info("kernels: entropy %.2f bits, top-1/8/32 coverage %.1f/%.1f/%.1f %% (uniform 0.2/1.6/6.3 %%)",
                     o["entropy"], 100 * o["top1"], 100 * o["top8"], 100 * o["top32"])

    def _to_wandb(self, trainer: pl.Trainer, stats: dict) -> None:
        try:
            from pytorch_lightning.loggers import WandbLogger
        except ImportError:  # pragma: no cover
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                rows = [[k, s["entropy"], s["top1"], s["top8"], s["top32"], s["distinct"]] for k, s in stats["layers"].items()]
                logger.log_table("kernels/layers", columns=["layer", "entropy", "top1", "top8", "top32", "distinct"], data=rows)
                images = [str(self.run_dir / f) for f in stats.get("figures", [])]
                if images:
                    logger.log_image("kernels/figures", images=images)
