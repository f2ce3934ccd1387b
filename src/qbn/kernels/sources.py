"""Where kernel signs come from: a live model, a Lightning checkpoint (with the run's config),
a sign snapshot, or a run directory. Always the signs forward uses (quantized ones under QBN)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..binary import binary_layers
from ..checkpoint import check_compatible, load_checkpoint
from ..errors import CheckpointError, QbnError
from ..run import run_config
from ..signs import load_snapshot, model_signs
from .stats import is_kernel_tensor


def backbone(model: nn.Module) -> nn.Module:
    """The backbone of a BWNModule (`.net`), or the model itself."""
    return getattr(model, "net", model)


def kernel_signs(signs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Only the 3x3 layers (the ones with kernel ids)."""
    return {k: v for k, v in signs.items() if is_kernel_tensor(v)}


def run_dir_of(path: Path) -> Path | None:
    """The run directory a checkpoint or folder belongs to (the one holding .hydra/config.yaml)."""
    for candidate in (path, *path.parents[:3]):
        if (candidate / ".hydra" / "config.yaml").exists():
            return candidate
    return None


def load_run_checkpoint(path: str | Path, module: nn.Module | None = None, need: str | None = None,
                        label: str | None = None):
    """(module, config): checkpoint `path` (or a run directory's last one) loaded into `module`, or
    into a module built from its run's .hydra/config.yaml when none is given (config None when the
    run has none). `need` says why a BWN is required: with it, a checkpoint whose run has
    binary.enabled=false, or a model without binary layers, is one clear CheckpointError.
    The one loader behind kernel statistics, qbn.from_ckpt and export."""
    path = Path(path)
    label = label or f"checkpoint {path}"
    ckpt = load_checkpoint(path)
    run_dir = run_dir_of(path if path.is_dir() else path.parent)
    cfg = run_config(run_dir) if run_dir is not None else None
    if module is None and cfg is None:
        raise CheckpointError(f"{path}: no .hydra/config.yaml in its run directory, so its model cannot be rebuilt; "
                              "pass a run directory or a checkpoint inside one")
    if need and cfg is not None and not cfg.binary.enabled:
        raise CheckpointError(f"{label} is not a BWN (its run has binary.enabled=false): {need}")
    if module is None:
        # lazy: qbn.build pulls in Hydra and the Lightning module, which sign snapshots do not need
        from ..build import build_module

        module = build_module(cfg)
    if need and not binary_layers(module.net):
        raise CheckpointError(f"{label} has no binary layers: {need}")
    check_compatible(ckpt["state_dict"], module, label)
    module.load_state_dict(ckpt["state_dict"])
    return module, cfg


def model_from_checkpoint(path: str | Path, require_binary: bool = True):
    """(module in eval mode, config) rebuilt from a checkpoint with its run's .hydra/config.yaml."""
    module, cfg = load_run_checkpoint(path, need="kernel statistics and QBN need a BWN" if require_binary else None)
    return module.eval(), cfg


def load_signs(source) -> dict[str, torch.Tensor]:
    """Signs of every binary layer (3x3 or not) of a model, a sign snapshot (.pt in signs/), a
    checkpoint or a run dir. Unfiltered, so kernels.json can list what it does not count."""
    if isinstance(source, nn.Module):
        return model_signs(backbone(source))
    path = Path(source)
    if path.is_file() and path.parent.name == "signs" and path.suffix == ".pt":
        return load_snapshot(path)
    if not path.exists():
        raise QbnError(f"{path} does not exist: give a run directory, a checkpoint or a sign snapshot")
    module, _ = model_from_checkpoint(path)
    return model_signs(backbone(module))


def load_kernel_signs(source) -> dict[str, torch.Tensor]:
    """3x3 layer signs (the ones with kernel ids) of any source load_signs takes."""
    return kernel_signs(load_signs(source))
