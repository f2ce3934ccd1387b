"""QBN during training (callbacks.codebook, always in the config: it acts when qbn.bits or qbn.budget
is set, else does nothing): at the start of a fresh fit, load the BWN (qbn.from_ckpt), set the
codebooks (all at once, or layer by layer with qbn.progressive), optionally recount them every
qbn.refresh_every steps, and record the settings and bits per binarized weight in summary.json.
A resumed run gets its codebooks back from the checkpoint (they are layer buffers)."""

from __future__ import annotations

import logging

import pytorch_lightning as pl

from ..binary import binary_layers
from ..checkpoint import load_run_checkpoint
from ..errors import CheckpointError
from ..kernels.quantize import (
    QBNSettings,
    model_bits,
    plan_bits,
    progressive_due,
    progressive_order,
    quantizable_layers,
    quantize,
    refresh,
)
from ..loggers import wandb_table
from ..rundir import update_summary

log = logging.getLogger("qbn.qbn")


def load_bwn(module: pl.LightningModule, path: str) -> None:
    """Load a trained BWN checkpoint into `module`; a non-BWN checkpoint is one clear error."""
    if not binary_layers(module.net):  # this run's own model, before reading any file
        raise CheckpointError("QBN needs a binary-weight model: this run has no binary layers (binary=fp?)")
    load_run_checkpoint(path, module, need="QBN quantizes a trained BWN", label=f"qbn.from_ckpt={path}")
    for layer in binary_layers(module.net).values():
        if layer.codebook is not None:
            layer.clear_codebook()   # a QBN checkpoint is re-quantized from its latent weights


class QBNCallback(pl.Callback):
    """Applies QBN to the model at the start of fit (fresh runs only) and keeps it during training;
    with QBN off (qbn.bits and qbn.budget null) it does nothing."""

    def __init__(self, settings: QBNSettings | dict, run_dir: str | None = None):
        self.settings = settings if isinstance(settings, QBNSettings) else QBNSettings.from_dict(settings)
        self.run_dir = run_dir
        self.bits: dict[str, int] = {}
        self.order: list[str] = []
        self.done: list[str] = []
        self.report: dict[str, dict] = {}

    def _layers(self, pl_module):
        return quantizable_layers(pl_module.net, self.settings.layers)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After Lightning restored a resumed run (weights, codebook buffers, this callback's
        # state): only a fresh start is changed. In-place loads keep the optimizer's parameters.
        if trainer.ckpt_path is not None or not self.settings.enabled:
            return
        s = self.settings
        if s.from_ckpt:
            load_bwn(pl_module, s.from_ckpt)
            log.info("QBN: loaded BWN weights from %s", s.from_ckpt)
        elif not binary_layers(pl_module.net):
            raise CheckpointError("QBN needs a binary-weight model: this run has no binary layers (binary=fp?)")
        layers = self._layers(pl_module)
        self.bits = plan_bits(s, pl_module.net, layers)
        self.order = progressive_order(layers, s.progressive_order) if s.progressive else list(layers)
        if not s.progressive:
            self._quantize(pl_module, self.order)
        self._record(trainer, pl_module)

    def _quantize(self, pl_module, names: list[str]) -> None:
        layers = self._layers(pl_module)
        todo = {k: layers[k] for k in names if k not in self.done}
        if not todo:
            return
        self.report.update(quantize(todo, {k: self.bits[k] for k in todo}, self.settings.codebook == "shared"))
        self.done += list(todo)
        changed = sum(self.report[k].get("signs_changed", 0.0) * self.report[k]["kernels"] for k in todo)
        log.info("QBN: quantized %d layers (n = %s); %.2f %% of their signs changed", len(todo),
                 ",".join(str(n) for n in sorted({self.bits[k] for k in todo})), 100 * changed / max(sum(self.report[k]["kernels"] for k in todo), 1))
        for k in todo:
            if self.report[k].get("note"):
                log.info("QBN: %s: %s", k, self.report[k]["note"])

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.settings.progressive and len(self.done) < len(self.order):
            due = progressive_due(trainer.current_epoch, len(self.order), trainer.max_epochs or 1, self.settings.progressive_every)
            self._quantize(pl_module, self.order[:due])
            self._record(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if len(self.done) < len(self.order):
            log.warning("QBN progressive: only %d of %d layers were quantized by the end of training; "
                        "give more epochs or a smaller qbn.progressive_every", len(self.done), len(self.order))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        k = int(self.settings.refresh_every)
        if k and trainer.global_step % k == 0:
            refresh({n: m for n, m in self._layers(pl_module).items() if n in self.done}, self.settings.codebook == "shared")

    def _record(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """summary.json: the settings, n per layer, what stays unquantized, bits per weight, bytes."""
        if not (self.run_dir and trainer.is_global_zero):
            return
        shared = self.settings.codebook == "shared"
        binary = binary_layers(pl_module.net)
        acc = model_bits(pl_module.net, self.bits, shared)
        not_quantized = [k for k in binary if k not in self.bits]
        update_summary(self.run_dir, qbn=dict(vars(self.settings)), qbn_bits=self.bits, qbn_layers=self.report,
                       qbn_quantized=list(self.done), qbn_not_quantized=not_quantized,
                       qbn_note="only 3x3 binary convs are quantized; other binary layers stay at 1 bit per weight "
                                "and full-precision layers (first conv, classifier, BatchNorm) are unchanged",
                       bits_per_weight=acc["bits_per_weight"], model_bytes=acc["model_bytes"], qbn_accounting=acc)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """W&B: this run's row of the accuracy-vs-bits table (a sweep's runs together draw the curve)."""
        acc = trainer.callback_metrics.get("test/acc")
        if not (trainer.is_global_zero and self.bits and acc is not None):
            return
        s, bits = self.settings, model_bits(pl_module.net, self.bits, self.settings.codebook == "shared")
        wandb_table(trainer.loggers, "qbn/accuracy_bits", ["n", "budget", "bits_per_weight", "model_bytes", "test_acc"],
                    [[s.bits, s.budget, bits["bits_per_weight"], bits["model_bytes"], float(acc)]])

    def state_dict(self) -> dict:
        return {"bits": dict(self.bits), "order": list(self.order), "done": list(self.done), "report": dict(self.report)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.bits = dict(state_dict.get("bits", {}))
        self.order = list(state_dict.get("order", []))
        self.done = list(state_dict.get("done", []))
        self.report = dict(state_dict.get("report", {}))
