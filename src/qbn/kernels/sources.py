"""Where kernel signs come from: a live model, a Lightning checkpoint (with the run's config),
a sign snapshot, or a run directory. Always the signs forward uses (quantized ones under QBN)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..binary import binary_layers
from ..checkpoint import check_compatible, load_checkpoint
from ..errors import CheckpointError, QbnError
from ..signs import load_snapshot, model_signs
from .stats import is_kernel_tensor


def backbone(model: nn.Module) -> nn.Module:
    """The backbone of a BWNModule (`.net`), or the model itself."""
    return getattr(model, "net", model)


def kernel_signs(signs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Only the 3x3 layers (the ones with kernel ids)."""
    return {k: v for k, v in signs.items() if is_kernel_tensor(v)}


def live_signs(model: nn.Module) -> dict[str, torch.Tensor]:
    """Signs of every 3x3 binary conv of a live model (a BWNModule or a backbone)."""
    return kernel_signs(model_signs(backbone(model)))


def run_dir_of(path: Path) -> Path | None:
    """The run directory a checkpoint or folder belongs to (the one holding .hydra/config.yaml)."""
    for candidate in (path, *path.parents[:3]):
        if (candidate / ".hydra" / "config.yaml").exists():
            return candidate
    return None


def model_from_checkpoint(path: str | Path, require_binary: bool = True):
    """(module, config) rebuilt from a checkpoint with its run's .hydra/config.yaml."""
    from omegaconf import OmegaConf

    from ..build import build_module

    path = Path(path)
    ckpt = load_checkpoint(path)
    run_dir = run_dir_of(path if path.is_dir() else path.parent)
    if run_dir is None:
        raise CheckpointError(f"{path}: no .hydra/config.yaml in its run directory, so its model cannot be rebuilt; "
                              "pass a run directory or a checkpoint inside one")
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    if require_binary and not cfg.binary.enabled:
        raise CheckpointError(f"{path} is not a BWN checkpoint (its run has binary.enabled=false): "
                              "kernel statistics and QBN need a binary-weight network")
    module = build_module(cfg)
    check_compatible(ckpt["state_dict"], module, f"checkpoint {path}")
    module.load_state_dict(ckpt["state_dict"])
    if require_binary and not binary_layers(module.net):
        raise CheckpointError(f"{path} has no binary layers: kernel statistics and QBN need a BWN")
    return module.eval(), cfg


def load_kernel_signs(source) -> dict[str, torch.Tensor]:
    """3x3 layer signs from a model, a sign snapshot (.pt in signs/), a checkpoint or a run dir."""
    if isinstance(source, nn.Module):
        return live_signs(source)
    path = Path(source)
    if path.is_file() and path.parent.name == "signs" and path.suffix == ".pt":
        return kernel_signs(load_snapshot(path))
    if not path.exists():
        raise QbnError(f"{path} does not exist: give a run directory, a checkpoint or a sign snapshot")
    module, _ = model_from_checkpoint(path)
    return live_signs(module)
