"""Helpers for tests and benchmarks: compose the real Hydra config (as `python -m qbn.train` would)
in a temp run dir, run entry points as a user would, write run directories without training,
check a QBN run. They run from a checkout (ROOT: its data/ and outputs/)."""

from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from qbn.binary import BinaryPolicy, binarize
from qbn.config import CONFIG_DIR
from qbn.models import resnet20
from qbn.rundir import RunDir
from qbn.schema import compose_config
from qbn.signs import save_snapshot, snapshot_path

ROOT = Path(__file__).resolve().parents[3]   # the checkout: src/qbn/testing/runs.py
FASHION_MNIST_AVAILABLE = (ROOT / "data" / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").exists() or Path(
    "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists()

# Small, quiet runs for tests: debug=smoke (conf/debug/smoke.yaml: one epoch, no progress bar, model
# summary, report or kernel figures; drawing figures is most of a tiny run's time) on synthetic data.
TINY = ["debug=smoke", "dataset=synthetic"]


def merged(base, *overrides: str, drop: tuple[str, ...] = ()) -> list[str]:
    """The overrides `base` less those whose key is in `drop` or set again by `overrides`, then `overrides`."""
    keys = {o.split("=", 1)[0] for o in overrides} | set(drop)
    return [o for o in base if o.split("=", 1)[0] not in keys] + list(overrides)


def tiny(*overrides: str, drop: tuple[str, ...] = ()) -> list[str]:
    """TINY with `overrides` (merged); an option debug=smoke sets is simply set again: the command line wins."""
    return merged(TINY, *overrides, drop=drop)


def compose_cfg(run_dir: Path, overrides: list[str] | None = None):
    """The composed train config with Hydra's runtime pointing at run_dir (no Hydra app needed)."""
    GlobalHydra.instance().clear()
    cfg = compose_config(CONFIG_DIR, "train", list(overrides or []), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.num = 0
        cfg.paths.data_dir = str(ROOT / "data")
    HydraConfig.instance().set_config(cfg)
    return cfg


def qbn_settings(**changes) -> dict:
    """The qbn section of the default config (conf/qbn/off.yaml: QBN's defaults live there only)
    with `changes`: what QBNSettings.from_dict receives from a composed config."""
    return {**copy.deepcopy(_qbn_defaults()), **changes}


@functools.lru_cache(maxsize=1)
def _qbn_defaults() -> dict:
    return OmegaConf.to_container(compose_config(CONFIG_DIR, "train", []).qbn, resolve=True)


def compose_run(run_dir: Path, overrides: list[str] | None = None):
    """compose_cfg, also saved as <run_dir>/.hydra/config.yaml as the Hydra app would."""
    cfg = compose_cfg(run_dir, overrides)
    RunDir(run_dir).hydra_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), RunDir(run_dir).config_yaml,
                   resolve=True)
    return cfg


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m ...` as a user would, with no standard input; `env` is added to the environment."""
    env = dict(os.environ, QBN_DATA_DIR=str(ROOT / "data"), PYTHONUNBUFFERED="1", WANDB_MODE="offline", **(env or {}))
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def write_run_dir(run_dir: Path, cfg, module) -> Path:
    """A run directory made like a real run's, without training: .hydra/config.yaml (cfg less hydra,
    paths.run_dir set to run_dir) and its last checkpoint with module's state."""
    run = RunDir(run_dir)
    run.hydra_dir.mkdir(parents=True, exist_ok=True)
    run.checkpoints.mkdir(exist_ok=True)
    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(plain):
        plain.pop("hydra", None)
        plain.paths.run_dir = str(run_dir)
    OmegaConf.save(plain, run.config_yaml)
    torch.save({"state_dict": module.state_dict()}, run.last_ckpt)
    return run_dir


def sign_history(epochs: int = 4, n: int = 40, seed: int = 0) -> torch.Tensor:
    """(epochs + 1) x n signs, each epoch flipping fewer of them (a trunk's sign history)."""
    g = torch.Generator().manual_seed(seed)
    h = [torch.rand(n, generator=g) < 0.5]
    for e in range(epochs):
        flip = torch.rand(n, generator=g) < 0.4 / (e + 1)
        h.append(h[-1] ^ flip)
    return torch.stack(h)


def fake_trunk(root: Path, epochs: int = 4, name: str = "trunk", status: str = "completed") -> Path:
    """A trunk directory with snapshots of two layers, a summary and a config (no training)."""
    d = root / name / "2026-01-01_00-00-00_000000"
    h = sign_history(epochs, n=4 * 3 * 3 + 2 * 4 * 3 * 3)
    for e in range(epochs + 1):
        save_snapshot(snapshot_path(d, e), {"l1": h[e, :36].view(4, 1, 3, 3), "l2": h[e, 36:].view(2, 4, 3, 3)}, e)
    RunDir(d).write_summary({"status": status, "epochs": epochs, "test/acc": 0.5})
    RunDir(d).hydra_dir.mkdir(parents=True, exist_ok=True)
    config = OmegaConf.create({"model": {"name": "resnet20"}, "trainer": {"max_epochs": epochs}})
    OmegaConf.save(config, RunDir(d).config_yaml)
    return d


def check_qbn_run(run_dir: Path, summary: dict, bits: int = 4) -> dict:
    """A QBN fine-tuning run with `bits`: its summary, the codebooks in its last checkpoint, and kernels.json
    using only codewords. Returns kernels.json."""
    assert summary["status"] == "completed" and summary["qbn"]["bits"] == bits
    assert 0 < summary["bits_per_weight"] < 1 and summary["model_bytes"] > 0
    assert set(summary["qbn_bits"].values()) == {bits}
    state = torch.load(RunDir(run_dir).last_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    books = {k[: -len(".codebook")]: v for k, v in state.items() if k.endswith(".codebook")}
    assert len(books) == len(summary["qbn_bits"]) and all(len(b) <= 2 ** bits for b in books.values())
    stats = json.loads(RunDir(run_dir).kernels_json.read_text())
    assert stats["layers"], "kernels.json lists no layer: the codeword check below would check nothing"
    for name, layer_stats in stats["layers"].items():       # after fine-tuning steps: only codewords
        used = {i for i, c in enumerate(layer_stats["histogram"]) if c}
        assert used <= set(books["net." + name].tolist())
    return stats


def grouped_and_per_layer(scaling: str, ste: str, image_size: int = 16, **policy):
    """The same resnet20 BWN twice, binarized in groups and layer by layer, with latent weights
    spread past +-1 so that clipping matters (tests/test_grouped.py, experiments/bench/grouped_device.py)."""
    torch.manual_seed(0)
    net = resnet20(num_classes=10, in_channels=3, image_size=image_size)
    for p in net.parameters():
        p.data.mul_(torch.empty_like(p).uniform_(0.5, 8.0))
    plain = copy.deepcopy(net)
    grouped = binarize(net, BinaryPolicy(scaling=scaling, ste=ste, grouped=True, **policy))
    per_layer = binarize(plain, BinaryPolicy(scaling=scaling, ste=ste, grouped=False, **policy))
    return grouped, per_layer
