"""Test helpers: compose the real Hydra config (as `python -m qbn.train` would) in a temp run dir,
and run entry points as a user would."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from qbn.config import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]
FASHION_MNIST_AVAILABLE = (ROOT / "data" / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").exists() or Path(
    "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists()

# Small, quiet runs for tests: synthetic data, one epoch, no progress bar, report or kernel figures
# (drawing figures is most of a tiny run's time; test_cli_run_writes_complete_run_directory checks them).
TINY = ["dataset=synthetic", "trainer.max_epochs=1", "callbacks.progress=null", "trainer.enable_model_summary=false",
        "report=false", "callbacks.kernel_stats.figures=false"]


def compose_cfg(run_dir: Path, overrides: list[str] | None = None):
    """The composed train config with Hydra's runtime pointing at run_dir (no Hydra app needed)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides or []), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.num = 0
        cfg.paths.data_dir = str(ROOT / "data")
    HydraConfig.instance().set_config(cfg)
    return cfg


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m ...` as a user would, with no standard input."""
    env = dict(os.environ, QBN_DATA_DIR=str(ROOT / "data"), PYTHONUNBUFFERED="1", WANDB_MODE="offline")
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def grouped_and_per_layer(scaling: str, ste: str, image_size: int = 16, **policy):
    """The same resnet20 BWN twice, binarized in groups and layer by layer, with latent weights
    spread past +-1 so that clipping matters (tests/test_grouped.py, experiments/bench/grouped_device.py)."""
    from qbn.binary import BinaryPolicy, binarize
    from qbn.models import resnet20

    torch.manual_seed(0)
    net = resnet20(num_classes=10, in_channels=3, image_size=image_size)
    for p in net.parameters():
        p.data.mul_(torch.empty_like(p).uniform_(0.5, 8.0))
    plain = copy.deepcopy(net)
    grouped = binarize(net, BinaryPolicy(scaling=scaling, ste=ste, grouped=True, **policy))
    per_layer = binarize(plain, BinaryPolicy(scaling=scaling, ste=ste, grouped=False, **policy))
    return grouped, per_layer
