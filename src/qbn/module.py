"""The LightningModule: backbone (binary by policy) + cross-entropy + torchmetrics + optimizers, and
building it from a composed config (build_module)."""

from __future__ import annotations

from typing import Any

import hydra
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torchmetrics
from omegaconf import DictConfig
from torch import nn

from .binary import BinaryPolicy, binarize, binary_layers
from .config import group_with_target, to_plain
from .data.augment import random_crop_flip, step_generator
from .errors import ConfigError
from .losses import distillation_loss
from .speed import compile_in_place, compile_options, use_channels_last


class Normalize(nn.Module):
    """(x - mean) / std per channel. Part of the model so checkpoints and packed files predict
    from raw [0, 1] images without dataset code."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (in-memory datasets) to floats in [0, 1]; float batches pass unchanged."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x


# kinds of parameter with their own weight decay (optimizer.weight_decay_<kind>)
PARAMETER_KINDS = ("binary", "scale", "bn", "fp")


class BWNModule(pl.LightningModule):
    """Classification with a (binary-weight) backbone.

    `optimizer` and `scheduler` are plain dicts of the config groups (conf/optimizer, conf/scheduler:
    the defaults live there, once), each instantiated from its `_target_`. Weight decay is set per kind of
    parameter: latent binary weights, scales (alpha), BatchNorm and biases, full-precision weights,
    and learned codebook patterns (qbn.method=learned: no decay, lr `pattern_lr`).
    """

    # The learned patterns' learning rate (qbn.learned_lr, set by the QBN callback before the
    # optimizer is made); None: the optimizer's lr.
    pattern_lr: float | None = None

    def __init__(self, net: nn.Module, num_classes: int, mean, std, optimizer: dict, scheduler: dict,
                 augment: dict | None = None, seed: int = 0, channels_last: bool = False,
                 compile: dict | None = None):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.optimizer_cfg = group_with_target(optimizer, "optimizer")
        self.scheduler_cfg = group_with_target(scheduler, "scheduler")
        self.augment, self.seed = dict(augment or {}), seed
        self.channels_last = channels_last
        self.compile_options = compile  # torch.compile's arguments (qbn.speed), applied when fitting starts
        if channels_last:
            self.to(memory_format=torch.channels_last)
        metric = lambda k: torchmetrics.Accuracy(task="multiclass", num_classes=num_classes, top_k=k)  # noqa: E731
        self.train_acc, self.val_acc, self.test_acc = metric(1), metric(1), metric(1)
        self.top5 = num_classes > 5
        if self.top5:
            self.val_acc5, self.test_acc5 = metric(5), metric(5)
        self.val_acc_best = torchmetrics.MaxMetric()
        self._distill: tuple[nn.Module, float, float] | None = None

    def set_teacher(self, teacher: nn.Module | None, weight: float = 0.0, temperature: float = 1.0) -> None:
        """Distil from `teacher` (frozen, in eval mode) during training; None stops. Held in a tuple,
        so it is no submodule: not in the state dict, the parameters, or a packed file."""
        self._distill = None if teacher is None else (teacher, float(weight), float(temperature))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_unit_float(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(self.normalize(x))

    def on_fit_start(self) -> None:
        # here, not in __init__: a model rebuilt from a checkpoint to be read (export, kernels) is never compiled
        compile_in_place(self.net, self.compile_options)

    def _augment(self, x: torch.Tensor, batch_idx: int) -> torch.Tensor:
        if not self.augment:
            return x
        g = step_generator(self.seed, self.current_epoch, batch_idx, x.device)
        return random_crop_flip(x, int(self.augment.get("crop_padding", 0)), bool(self.augment.get("flip", False)), g)

    def training_step(self, batch, batch_idx: int) -> dict:
        x, y = batch
        x = self._augment(to_unit_float(x), batch_idx)
        logits = self(x)
        if self._distill is None:
            loss = F.cross_entropy(logits, y)
        else:
            teacher, weight, temperature = self._distill
            with torch.no_grad():
                soft = teacher(x)
            loss = distillation_loss(logits, soft, y, weight, temperature)
        acc = self.train_acc(logits, y)  # this batch's accuracy (the metric also accumulates the epoch's)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return {"loss": loss, "acc": acc.detach()}  # progress lines without a terminal show both

    def _eval_step(self, batch, stage: str) -> None:
        x, y = batch
        logits = self(x)
        self.log(f"{stage}/loss", F.cross_entropy(logits, y), on_epoch=True)
        acc = getattr(self, f"{stage}_acc")
        acc(logits, y)
        self.log(f"{stage}/acc", acc, on_epoch=True, prog_bar=True)
        if self.top5:
            acc5 = getattr(self, f"{stage}_acc5")
            acc5(logits, y)
            self.log(f"{stage}/acc_top5", acc5, on_epoch=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        opt = self.trainer.optimizers[0] if self.trainer.optimizers else None
        if opt is not None and batch_idx % max(self.trainer.log_every_n_steps, 1) == 0:
            self.log("lr", opt.param_groups[0]["lr"], on_step=True, on_epoch=False)

    # ---- optimisation -------------------------------------------------------------------

    def parameter_groups(self) -> list[dict]:
        """Split parameters by kind so each kind gets its own weight decay."""
        cfg = self.optimizer_cfg
        base_wd = cfg["weight_decay"]
        decay = {k: (base_wd if cfg[f"weight_decay_{k}"] is None else cfg[f"weight_decay_{k}"])
                 for k in PARAMETER_KINDS}
        decay["patterns"] = 0.0   # decay would pull the learned patterns' signs towards flipping
        groups: dict[str, list] = {k: [] for k in decay}
        binary_weights = {id(m.weight) for m in binary_layers(self.net).values()}
        for module in self.net.modules():
            for name, p in module.named_parameters(recurse=False):
                if not p.requires_grad:
                    continue
                if id(p) in binary_weights:
                    groups["binary"].append(p)
                elif name == "patterns":
                    if all(p is not q for q in groups["patterns"]):   # a shared codebook: one Parameter, many layers
                        groups["patterns"].append(p)
                elif name == "alpha":
                    groups["scale"].append(p)
                elif isinstance(module, nn.modules.batchnorm._NormBase) or name == "bias":
                    groups["bn"].append(p)
                else:
                    groups["fp"].append(p)
        out = [{"params": ps, "weight_decay": decay[k], "name": k} for k, ps in groups.items() if ps]
        for group in out:
            if group["name"] == "patterns" and self.pattern_lr is not None:
                group["lr"] = float(self.pattern_lr)
        return out

    def configure_optimizers(self):
        """The optimizer and the per-step schedule, each instantiated from its config group's `_target_`."""
        opt = instantiate_partial(self.optimizer_cfg, OPTIMIZER_OWN_KEYS)(self.parameter_groups())
        lr_sched = instantiate_partial(self.scheduler_cfg, ("name",))(opt, self.trainer)
        if lr_sched is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": lr_sched, "interval": "step"}}


# keys of conf/optimizer that qbn reads itself (the summary's name, the per-kind weight decays);
# every other key goes to the optimizer's constructor
OPTIMIZER_OWN_KEYS = ("name", *(f"weight_decay_{k}" for k in PARAMETER_KINDS))


def instantiate_partial(section: dict, own: tuple[str, ...]):
    """The callable a `_partial_: true` config section makes, less the keys qbn reads itself."""
    return hydra.utils.instantiate({k: v for k, v in section.items() if k not in own}, _convert_="all")


def build_backbone(cfg: DictConfig) -> torch.nn.Module:
    """The backbone for cfg.dataset's shape, binarized by cfg.binary, checked on a dummy input."""
    ds = cfg.dataset
    try:
        net = hydra.utils.instantiate(cfg.model.backbone, num_classes=ds.num_classes, in_channels=ds.in_channels,
                                      image_size=ds.image_size, _convert_="all")
    except Exception as e:  # noqa: BLE001  a backbone refusing its arguments is a config mistake
        cause = e.__cause__ or e
        raise ConfigError(f"model '{cfg.model.name}' cannot be built for dataset '{ds.name}': {cause}") from None
    if cfg.binary.enabled:
        policy = BinaryPolicy(scaling=cfg.scaling.name, ste=cfg.binary.ste, first_conv=cfg.binary.first_conv,
                              classifier=cfg.binary.classifier, shortcuts=cfg.binary.shortcuts,
                              grouped=cfg.binary.grouped)
        binarize(net, policy)
    # Fail at set-up, not deep in the first training step, when the input cannot pass through.
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(torch.zeros(1, ds.in_channels, ds.image_size, ds.image_size))
    except (RuntimeError, ValueError) as e:
        raise ConfigError(
            f"model '{cfg.model.name}' cannot take {ds.image_size}x{ds.image_size} inputs with {ds.in_channels} "
            f"channel(s) from dataset '{ds.name}' ({str(e).splitlines()[0][:160]}). Choose a model for small "
            "images (resnet20/32/56, or resnet18/34 with model.backbone.stem=small) or a larger input size.") from None
    finally:
        net.train(was_training)
    if out.shape[-1] != ds.num_classes:
        raise ConfigError(f"model '{cfg.model.name}' gives {out.shape[-1]} outputs, "
                          f"dataset has {ds.num_classes} classes")
    return net


def build_module(cfg: DictConfig) -> BWNModule:
    net = build_backbone(cfg)
    ds = cfg.dataset
    return BWNModule(net, num_classes=ds.num_classes, mean=list(ds.mean), std=list(ds.std),
                     optimizer=to_plain(cfg.optimizer), scheduler=to_plain(cfg.scheduler),
                     augment=to_plain(ds.augment), seed=cfg.seed,
                     channels_last=use_channels_last(cfg.channels_last, cfg.trainer.get("accelerator")),
                     compile=compile_options(cfg.get("compile")))
