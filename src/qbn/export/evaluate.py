"""Test accuracy of a packed file alone, on a dataset composed from qbn's configs."""

from __future__ import annotations

from pathlib import Path

import hydra
import torch

from ..config import CONFIG_DIR, check_choices
from ..errors import ConfigError
from ..schema import check_config, compose_train
from .loader import load


def compose_dataset(overrides: list[str]):
    """The config of `python -m qbn.train` with Hydra-style overrides (dataset=...), checked as
    qbn.train checks it (check_choices, check_config): a mistake such as dataset.test_subset=abc is
    one ConfigError naming the option, before any data is read."""
    check_choices(list(overrides), CONFIG_DIR)
    cfg = compose_train(list(overrides))
    check_config(cfg)
    return cfg


@torch.no_grad()
def evaluate_file(path: str | Path, overrides: list[str]) -> dict:
    """{'acc', 'images', 'dataset'}: top-1 accuracy of the file's model on the test split."""
    cfg = compose_dataset(overrides)   # the options first, as qbn.train checks them before anything starts
    model = load(path)
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
