"""From a composed config to the objects a run needs: datamodule, model, callbacks, loggers."""

from __future__ import annotations

import os
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from .binary import BinaryPolicy, binarize
from .config import to_plain
from .errors import ConfigError
from .module import BWNModule


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    return hydra.utils.instantiate(cfg.dataset, _convert_="all")


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
                              grouped=cfg.binary.get("grouped", True))
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
        raise ConfigError(f"model '{cfg.model.name}' gives {out.shape[-1]} outputs, dataset has {ds.num_classes} classes")
    return net


def build_module(cfg: DictConfig) -> BWNModule:
    net = build_backbone(cfg)
    ds = cfg.dataset
    return BWNModule(net, num_classes=ds.num_classes, mean=list(ds.mean), std=list(ds.std),
                     optimizer=to_plain(cfg.optimizer), scheduler=to_plain(cfg.scheduler),
                     augment=to_plain(ds.get("augment")), seed=cfg.seed, channels_last=cfg.get("channels_last", False))


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    callbacks = []
    for name, c in (cfg.get("callbacks") or {}).items():
        if c is not None and "_target_" in c:
            callbacks.append(hydra.utils.instantiate(c, _convert_="all"))
        elif c is not None:
            raise ConfigError(f"callbacks.{name} has no _target_; set callbacks.{name}=null to switch it off")
    # QBN changes training: on with qbn.bits / qbn.budget, never switched off by callbacks=
    from .callbacks.qbn import qbn_callbacks

    return callbacks + qbn_callbacks(cfg)


def _wandb_mode(requested: str) -> str:
    if requested != "auto":
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path.home() / ".netrc"
    if netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore"):
        return "online"
    return "offline"


def build_loggers(cfg: DictConfig, run_dir: Path, sweep_name: str | None, resume_epoch: int | None = None) -> list:
    from .loggers import RunCSVLogger

    loggers = [RunCSVLogger(str(run_dir), resume_epoch)]
    wb = cfg.logger.get("wandb")
    if wb:
        from pytorch_lightning.loggers import WandbLogger

        os.environ.setdefault("WANDB_SILENT", "true")
        mode = _wandb_mode(wb.mode)
        loggers.append(WandbLogger(
            save_dir=str(run_dir), project=wb.project, entity=wb.entity, mode=mode,
            group=wb.group or sweep_name, tags=list(wb.tags), log_model=wb.log_model,
            name=f"{cfg.name}/{run_dir.name}", config=OmegaConf.to_container(cfg, resolve=True),
        ))
    return loggers


def set_tf32(allow: bool) -> None:
    """cuDNN convolutions default to TF32 on Ampere and later GPUs even at "32-true" precision, so a
    GPU run's accuracy differs from the same weights in fp32 (measured: 92.96 % on an H200 against
    92.86 % on the CPU and from the packed file). Off by default. (Kept out of train.py: joblib
    pickles that module's functions by value, and torch.backends.cudnn cannot be pickled.)"""
    torch.backends.cudnn.allow_tf32 = allow
    torch.backends.cuda.matmul.allow_tf32 = allow
