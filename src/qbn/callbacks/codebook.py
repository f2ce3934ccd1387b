"""QBN during training (callbacks.codebook, always in the config: it acts when qbn.bits or qbn.budget
is set, else does nothing): at the start of a fresh fit, load the BWN (qbn.from_ckpt), set the
codebooks (all at once, or layer by layer with qbn.progressive), optionally recount them every
qbn.refresh_every steps, and record the settings and bits per binarized weight in summary.json.
A resumed run gets its codebooks back from the checkpoint (they are layer buffers).

qbn.method=learned: the patterns are Parameters, so they are made in setup() (before the optimizer
and any DDP wrapper); duplicates are re-seeded every qbn.learned_reseed_every steps, and after the
last training batch (before the last validation and checkpoint) the patterns are frozen into plain
codebooks, so what is validated, tested, saved and packed is one QBN model."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch

from ..binary import binary_layers
from ..checkpoint import load_run_checkpoint
from ..errors import CheckpointError
from ..kernels.learned import freeze_patterns, init_patterns, reseed_duplicates
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
from ..rundir import RunDir

log = logging.getLogger("qbn.qbn")


def load_bwn(module: pl.LightningModule, path: str) -> None:
    """Load a trained BWN checkpoint into `module`; a non-BWN checkpoint is one clear error."""
    if not binary_layers(module.net):  # this run's own model, before reading any file
        raise CheckpointError("QBN needs a binary-weight model: this run has no binary layers (binary=fp?)")
    load_run_checkpoint(path, module, need="QBN quantizes a trained BWN", label=f"qbn.from_ckpt={path}")
    for layer in binary_layers(module.net).values():
        if layer.codebook is not None or layer.patterns is not None:
            layer.clear_codebook()   # a QBN checkpoint is re-quantized from its latent weights


class QBNCallback(pl.Callback):
    """Applies QBN to the model at the start of fit (fresh runs only) and keeps it during training;
    with QBN off (qbn.bits and qbn.budget null) it does nothing."""

    writes = ()   # summary.json fields only (the run directory's own file, RunDir.CORE)

    def __init__(self, settings: QBNSettings | dict, run_dir: str | None = None):
        self.settings = settings if isinstance(settings, QBNSettings) else QBNSettings.from_dict(settings)
        self.run_dir = run_dir
        self.bits: dict[str, int] = {}
        self.order: list[str] = []
        self.done: list[str] = []
        self.report: dict[str, dict] = {}
        self.reseeded = 0

    def _layers(self, pl_module):
        return quantizable_layers(pl_module.net, self.settings.layers)

    def _load_and_plan(self, pl_module: pl.LightningModule) -> dict:
        """The BWN loaded (qbn.from_ckpt) and n planned per layer; returns the layers to quantize."""
        s = self.settings
        if s.from_ckpt:
            load_bwn(pl_module, s.from_ckpt)
            log.info("QBN: loaded BWN weights from %s", s.from_ckpt)
        elif not binary_layers(pl_module.net):
            raise CheckpointError("QBN needs a binary-weight model: this run has no binary layers (binary=fp?)")
        layers = self._layers(pl_module)
        self.bits = plan_bits(s, pl_module.net, layers)
        return layers

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Learned patterns are Parameters: made here, before the optimizer and DDP see the model. A
        # resumed run passes here too (Lightning has not read its checkpoint yet), and the checkpoint
        # then restores the patterns in place, or drops them if it holds frozen codebooks.
        if stage != "fit" or not self.settings.learned:
            return
        s = self.settings
        pl_module.pattern_lr = s.learned_lr
        layers = self._load_and_plan(pl_module)
        self.order, self.done = list(layers), list(layers)
        self.report = init_patterns(layers, self.bits, s.codebook == "shared", s.learned_init)
        learned = [k for k, e in self.report.items() if e["quantized"]]
        log.info("QBN learned: %d layers with learned patterns (init %s, n = %s)", len(learned), s.learned_init,
                 ",".join(str(n) for n in sorted({self.bits[k] for k in learned})) or "-")

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After Lightning restored a resumed run (weights, codebook buffers, this callback's
        # state): only a fresh start is changed. In-place loads keep the optimizer's parameters.
        if trainer.ckpt_path is not None or not self.settings.enabled:
            return
        s = self.settings
        if s.learned:   # set up in setup()
            self._record(trainer, pl_module)
            return
        layers = self._load_and_plan(pl_module)
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
        kernels = max(sum(self.report[k]["kernels"] for k in todo), 1)
        log.info("QBN: quantized %d layers (n = %s); %.2f %% of their signs changed", len(todo),
                 ",".join(str(n) for n in sorted({self.bits[k] for k in todo})), 100 * changed / kernels)
        for k in todo:
            if self.report[k].get("note"):
                log.info("QBN: %s: %s", k, self.report[k]["note"])

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.settings.progressive and len(self.done) < len(self.order):
            due = progressive_due(trainer.current_epoch, len(self.order), trainer.max_epochs or 1,
                                  self.settings.progressive_every)
            self._quantize(pl_module, self.order[:due])
            self._record(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.settings.learned:   # training stopped early (a callback, Ctrl-C): freeze what there is
            self._freeze(trainer, pl_module)
        if len(self.done) < len(self.order):
            log.warning("QBN progressive: only %d of %d layers were quantized by the end of training; "
                        "give more epochs or a smaller qbn.progressive_every", len(self.done), len(self.order))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        k = int(self.settings.refresh_every)
        if k and trainer.global_step % k == 0:
            done = {n: m for n, m in self._layers(pl_module).items() if n in self.done}
            refresh(done, self.settings.codebook == "shared")
        if self.settings.learned:
            final = final_batch(trainer, batch_idx)
            every = int(self.settings.learned_reseed_every)
            if every and trainer.global_step % every == 0 and not final:
                self._reseed(trainer, pl_module)
            if final:
                self._freeze(trainer, pl_module)

    def _reseed(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Duplicate patterns re-seeded; the optimizer forgets their rows' moments (a fresh start)."""
        for patterns, rows in reseed_duplicates(self._layers(pl_module)):
            for opt in trainer.optimizers:
                for value in opt.state.get(patterns, {}).values():
                    if torch.is_tensor(value) and value.shape == patterns.shape:
                        value[rows] = 0
            self.reseeded += int(rows.numel())

    def _freeze(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Learned patterns -> fixed codebooks (the same forward); their optimizer group goes too."""
        layers = self._layers(pl_module)
        params = list({id(m.patterns): m.patterns for m in layers.values() if m.patterns is not None}.values())
        if not params:
            return
        for name, entry in freeze_patterns(layers).items():
            self.report.setdefault(name, {}).update(entry)
        drop_param_groups(trainer, params)
        log.info("QBN learned: patterns frozen into codebooks (%d duplicate patterns re-seeded during training)",
                 self.reseeded)
        self._record(trainer, pl_module)

    def _record(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """summary.json: the settings, n per layer, what stays unquantized, bits per weight, bytes."""
        if not (self.run_dir and trainer.is_global_zero):
            return
        shared = self.settings.codebook == "shared"
        binary = binary_layers(pl_module.net)
        acc = model_bits(pl_module.net, self.bits, shared)
        not_quantized = [k for k in binary if k not in self.bits]
        RunDir(self.run_dir).update_summary(qbn=dict(vars(self.settings)), qbn_bits=self.bits, qbn_layers=self.report,
                       qbn_quantized=list(self.done), qbn_not_quantized=not_quantized,
                       qbn_note="only 3x3 binary convs are quantized; other binary layers stay at 1 bit per weight "
                                "and full-precision layers (first conv, classifier, BatchNorm) are unchanged",
                       bits_per_weight=acc["bits_per_weight"], model_bytes=acc["model_bytes"], qbn_accounting=acc,
                       **{"qbn/method": self.settings.method, "qbn/distill_weight": self.settings.distill_weight},
                       **({"qbn_learned": {"init": self.settings.learned_init, "reseeded": self.reseeded,
                                           "frozen": not any(m.patterns is not None for m in binary.values())}}
                          if self.settings.learned else {}))

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """W&B: this run's row of the accuracy-vs-bits table (a sweep's runs together draw the curve)."""
        acc = trainer.callback_metrics.get("test/acc")
        if not (trainer.is_global_zero and self.bits and acc is not None):
            return
        s, bits = self.settings, model_bits(pl_module.net, self.bits, self.settings.codebook == "shared")
        wandb_table(trainer.loggers, "qbn/accuracy_bits",
                    ["method", "n", "budget", "bits_per_weight", "model_bytes", "distill_weight", "test_acc"],
                    [[s.method, s.bits, s.budget, bits["bits_per_weight"], bits["model_bytes"], s.distill_weight,
                      float(acc)]])

    def state_dict(self) -> dict:
        return {"bits": dict(self.bits), "order": list(self.order), "done": list(self.done),
                "report": dict(self.report), "reseeded": self.reseeded}

    def load_state_dict(self, state_dict: dict) -> None:
        self.bits = dict(state_dict.get("bits", {}))
        self.order = list(state_dict.get("order", []))
        self.done = list(state_dict.get("done", []))
        self.report = dict(state_dict.get("report", {}))
        self.reseeded = int(state_dict.get("reseeded", 0))


def final_batch(trainer: pl.Trainer, batch_idx: int) -> bool:
    """True after the last training batch of the run (max_epochs or max_steps reached), before its
    last validation and checkpoint."""
    if trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step:
        return True
    epochs = trainer.max_epochs
    return epochs is not None and epochs > 0 and trainer.current_epoch + 1 >= epochs \
        and batch_idx + 1 >= trainer.num_training_batches


def drop_param_groups(trainer: pl.Trainer, params: list) -> None:
    """Take the groups holding `params` out of the optimizers, their state and their schedulers'
    per-group lists, so a checkpoint saved afterwards resumes into the model without them."""
    ids = {id(p) for p in params}
    for opt in trainer.optimizers:
        groups = opt.param_groups
        keep = [i for i, g in enumerate(groups) if not any(id(p) in ids for p in g["params"])]
        if len(keep) == len(groups):
            continue
        for i, g in enumerate(groups):
            if i not in keep:
                for p in g["params"]:
                    opt.state.pop(p, None)
        opt.param_groups = [groups[i] for i in keep]
        for config in trainer.lr_scheduler_configs:
            if config.scheduler.optimizer is opt:
                for attr in ("base_lrs", "lr_lambdas", "_last_lr"):
                    values = getattr(config.scheduler, attr, None)
                    if isinstance(values, list) and len(values) == len(groups):
                        setattr(config.scheduler, attr, [values[i] for i in keep])
