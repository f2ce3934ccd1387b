"""Loading checkpoints safely (weights_only) with clear messages when they do not fit, and a
run's model rebuilt from its checkpoint and its saved config (the one loader behind kernel
statistics, qbn.from_ckpt, export and the size table)."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from .binary import binary_layers
from .binary.layers import BinaryWeightMixin
from .errors import CheckpointError
from .module import build_module
from .rundir import RunDir


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint file `path` names: itself, or a run directory's (or checkpoints folder's) last checkpoint."""
    path = Path(path)
    if not path.is_dir():
        return path
    for candidate in (RunDir(path).last_ckpt, path / RunDir.LAST_CKPT):
        if candidate.exists():
            return candidate
    raise CheckpointError(f"no checkpoint in {path}: expected {RunDir(path).last_ckpt}")


def load_checkpoint(path: str | Path) -> dict:
    """A Lightning (or plain) checkpoint as a dict, loaded with weights_only=True. An empty,
    truncated or foreign file is one CheckpointError that says so (torch's own messages point at
    its internals or suggest weights_only=False, which would run the file's code)."""
    path = checkpoint_file(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty, not a checkpoint (a run killed while saving?): "
                              "use another checkpoint, or train again")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (truncated, or another kind of file): "
                              "give a checkpoints/*.ckpt file or a run directory")
    try:
        with warnings.catch_warnings():  # the weights-only unpickler warns about protocols before refusing
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path} holds Python objects besides tensors, which qbn never loads (they could run "
                              "code): give a checkpoint written by qbn or Lightning") from None
    except Exception as e:  # noqa: BLE001  any other failure of a damaged archive
        first = (str(e).splitlines() or [""])[0][:160]
        raise CheckpointError(f"{path} is a damaged checkpoint ({type(e).__name__}{': ' + first if first else ''}): "
                              "use another checkpoint, or train again") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return ckpt


def check_compatible(state_dict: dict, model: nn.Module, source: str = "checkpoint") -> None:
    """Raise one clear message when `state_dict` does not fit `model` (keys or shapes)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own and not _optional(k)]
    shapes = [(k, tuple(state_dict[k].shape), tuple(v.shape)) for k, v in own.items()
              if k in state_dict and hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or shapes):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    if shapes:
        k, theirs, ours = shapes[0]
        parts.append(f"{len(shapes)} shape mismatches (e.g. {k}: {theirs} in the {source}, {ours} in the model)")
    raise CheckpointError(f"the {source} does not fit this model: " + "; ".join(parts) +
                          ". Use the same model, dataset (classes, channels) and binary policy as the run that "
                          "wrote it.")


def _optional(key: str) -> bool:
    # optional buffers of binary layers (fixed signs, codebooks) and learned patterns are created on load
    return key.rsplit(".", 1)[-1] in (*BinaryWeightMixin.optional_buffers, "patterns")


def run_dir_of(path: Path) -> Path | None:
    """The run directory a checkpoint or folder belongs to (the one holding .hydra/config.yaml)."""
    for candidate in (path, *path.parents[:3]):
        if RunDir(candidate).config_yaml.exists():
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
    cfg = RunDir(run_dir).saved_config() if run_dir is not None else None
    if module is None and cfg is None:
        raise CheckpointError(f"{path}: no .hydra/config.yaml in its run directory, so its model cannot be rebuilt; "
                              "pass a run directory or a checkpoint inside one")
    if need and cfg is not None and not cfg.binary.enabled:
        raise CheckpointError(f"{label} is not a BWN (its run has binary.enabled=false): {need}")
    if module is None:
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
