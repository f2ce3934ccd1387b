"""Test accuracy of a packed file alone, on a dataset composed from qbn's configs."""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from ..config import CONFIG_DIR
from ..errors import ConfigError
from .loader import load


def compose_dataset(overrides: list[str]):
    """The dataset config of `python -m qbn.train` with Hydra-style overrides (dataset=...)."""
    try:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"bad override in {' '.join(overrides)}: {str(e).splitlines()[0][:200]}") from None
    return cfg


@torch.no_grad()
def evaluate_file(path: str | Path, overrides: list[str]) -> dict:
    """{'acc', 'images', 'dataset'}: top-1 accuracy of the file's model on the test split."""
    model = load(path)
    cfg = compose_dataset(overrides)
    ds = cfg.dataset
    spec = model.header["model"]
    for key in ("num_classes", "in_channels", "image_size"):
        if int(ds[key]) != int(spec[key]):
            raise ConfigError(f"dataset '{ds.name}' has {key}={ds[key]}, "
                              f"the model in {path} was built for {spec[key]}: choose the dataset it was trained on")
    dm = hydra.utils.instantiate(ds, _convert_="all")
    dm.prepare_data()
    dm.setup("test")
    correct = total = 0
    for x, y in dm.test_dataloader():
        correct += int((model(x).argmax(dim=1) == y).sum())
        total += int(y.numel())
    return {"acc": correct / max(total, 1), "images": total, "dataset": str(ds.name)}
