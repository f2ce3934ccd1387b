"""From a composed config to the objects a Trainer needs: datamodule, callbacks, loggers (the model:
qbn.module.build_module)."""

from __future__ import annotations

import os
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.loggers import WandbLogger

from .config import flatten
from .errors import ConfigError, QbnError
from .loggers import RunCSVLogger
from .schema import check_instruments


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """The dataset's module; what it found out (num_classes of an image folder, when the config left
    it null) is written back into cfg, so the model, the saved config and checkpoints agree."""
    try:
        datamodule = hydra.utils.instantiate(cfg.dataset, _convert_="all")
    except InstantiationException as e:
        if isinstance(e.__cause__, QbnError):   # the dataset's own message (an image folder's layout, ...)
            raise e.__cause__ from None
        raise
    if cfg.dataset.get("num_classes") is None:
        with open_dict(cfg):
            cfg.dataset.num_classes = int(datamodule.num_classes)
    return datamodule


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """Exactly the callbacks of cfg.callbacks, in order: the one place an instrument is attached.
    An option whose instrument the config switched off, or a callback that refuses its settings,
    is one clear message before anything trains."""
    check_instruments(cfg)
    callbacks = []
    for name, c in cfg.callbacks.items():
        if c is None:
            continue
        if "_target_" not in c:
            raise ConfigError(f"callbacks.{name} has no _target_; set callbacks.{name}=null to switch it off")
        try:
            callbacks.append(hydra.utils.instantiate(c, _convert_="all"))
        except InstantiationException as e:
            if isinstance(e.__cause__, QbnError):   # the callback's own message (a bad trunk, qbn.bits=12, ...)
                raise e.__cause__ from None
            raise ConfigError(f"callbacks.{name}: {str(e.__cause__ or e).splitlines()[0][:300]}") from None
    return callbacks


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
    loggers = [RunCSVLogger(str(run_dir), resume_epoch)]
    wb = cfg.logger.wandb
    if wb:
        os.environ.setdefault("WANDB_SILENT", "true")
        mode = _wandb_mode(wb.mode)
        loggers.append(WandbLogger(
            save_dir=str(run_dir), project=wb.project, entity=wb.entity, mode=mode,
            group=wb.group or sweep_name, tags=list(wb.tags), log_model=wb.log_model,
            name=f"{cfg.name}/{run_dir.name}", config=wandb_config(cfg),
        ))
    return loggers


def wandb_config(cfg: DictConfig) -> dict:
    """The resolved config flattened to dotted keys (optimizer.lr, model.name, ...): W&B's runs table,
    sweep views and parallel-coordinates chart then offer every option as one column."""
    own = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    return flatten(OmegaConf.to_container(own, resolve=True))


def set_tf32(allow: bool) -> None:
    """cuDNN convolutions default to TF32 on Ampere and later GPUs even at "32-true" precision, so a
    GPU run's accuracy differs from the same weights in fp32 (measured: 92.96 % on an H200 against
    92.86 % on the CPU and from the packed file). Off by default. (Kept out of train.py: joblib
    pickles that module's functions by value, and torch.backends.cudnn cannot be pickled.)"""
    torch.backends.cudnn.allow_tf32 = allow
    torch.backends.cuda.matmul.allow_tf32 = allow
