"""Reading the signs kernel statistics count, from a live model, a Lightning checkpoint (with the
run's config), a sign snapshot, or a run directory. Always the signs forward uses (quantized ones
under QBN)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..checkpoint import model_from_checkpoint
from ..errors import QbnError
from ..rundir import RunDir
from ..signs import load_snapshot, model_signs
from .histograms import is_kernel_tensor


def backbone(model: nn.Module) -> nn.Module:
    """The backbone of a BWNModule (`.net`), or the model itself."""
    return getattr(model, "net", model)


def kernel_signs(signs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Only the 3x3 layers (the ones with kernel ids)."""
    return {k: v for k, v in signs.items() if is_kernel_tensor(v)}


def load_signs(source) -> dict[str, torch.Tensor]:
    """Signs of every binary layer (3x3 or not) of a model, a sign snapshot (.pt in signs/), a
    checkpoint or a run dir. Unfiltered, so kernels.json can list what it does not count."""
    if isinstance(source, nn.Module):
        return model_signs(backbone(source))
    path = Path(source)
    if path.is_file() and path.parent.name == RunDir.SIGNS and path.suffix == ".pt":
        return load_snapshot(path)
    if not path.exists():
        raise QbnError(f"{path} does not exist: give a run directory, a checkpoint or a sign snapshot")
    module, _ = model_from_checkpoint(path)
    return model_signs(backbone(module))


def load_kernel_signs(source) -> dict[str, torch.Tensor]:
    """3x3 layer signs (the ones with kernel ids) of any source load_signs takes."""
    return kernel_signs(load_signs(source))
