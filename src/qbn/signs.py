"""Sign dynamics (definitions: docs/study.md) and sign snapshots on disk.

A sign history is a bool tensor of shape (E + 1) x N: row e holds the signs (True = +1) at the end
of epoch e, row 0 at initialisation. Every figure below is computed from such a history, per
layer or over all binarized weights (rows concatenated across layers).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from pathlib import Path

import torch
from torch import nn

from .binary import binary_layers, pack_bits, unpack_bits
from .errors import QbnError

SNAPSHOT_FORMAT = "qbn-signs-v2"
_SNAPSHOT_RE = re.compile(r"epoch_(\d{3,})\.pt$")


class SnapshotError(QbnError):
    pass


# ---- figures ------------------------------------------------------------------------------

def flip_fraction(before: torch.Tensor, after: torch.Tensor) -> float:
    """Share of weights whose sign differs between two sign tensors (Hamming distance / N)."""
    return (before != after).float().mean().item()


def epoch_changes(history: torch.Tensor) -> torch.Tensor:
    """c_e for e = 1..E: share of signs at the end of epoch e that differ from the end of e-1."""
    return (history[1:] != history[:-1]).float().mean(dim=1)


def distance_to_final(history: torch.Tensor) -> torch.Tensor:
    """d_e for e = 0..E: share of signs at the end of epoch e that differ from the final signs."""
    return (history != history[-1:]).float().mean(dim=1)


def last_flip_epochs(history: torch.Tensor, epochs: Sequence[int] | None = None) -> torch.Tensor:
    """L_i: the last epoch e >= 1 whose end-of-epoch sign differs from e-1's (0 if never).

    `epochs` labels the rows when snapshots were not taken every epoch (row r is epoch
    epochs[r]); L_i is then the label of the last row that differs from the row before it, and
    the first label if none does (0 when the history starts at initialisation).
    """
    labels = torch.arange(history.shape[0]) if epochs is None else torch.as_tensor(list(epochs))
    labels = labels.to(device=history.device, dtype=torch.long)
    never = labels[0].expand(history.shape[1]).clone()
    if history.shape[0] < 2:
        return never
    changed = history[1:] != history[:-1]                       # E x N, row r-1 is row r's change
    return torch.where(changed, labels[1:].unsqueeze(1), never.unsqueeze(0)).amax(dim=0)


def last_flip_histogram(last_flip: torch.Tensor, num_epochs: int) -> torch.Tensor:
    """For e = 0..E the number of weights with L_i = e."""
    return torch.bincount(last_flip.long().flatten(), minlength=num_epochs + 1)[: num_epochs + 1]


def stable_from_histogram(hist: torch.Tensor, n: int) -> torch.Tensor:
    """The stable-sign curve of a last-flip histogram over n weights: for each e, share with L_i <= e."""
    return hist.cumsum(0).double() / n


def freeze_epoch_from(stable: torch.Tensor, q: float) -> int:
    """E_q from a stable-sign curve: the first epoch whose share reaches q."""
    return int(torch.nonzero(stable >= q - 1e-12)[0].item())


def stable_fraction(last_flip: torch.Tensor, num_epochs: int) -> torch.Tensor:
    """For e = 0..E the share of weights with L_i <= e (the stable-sign curve; 1 at e = E)."""
    return stable_from_histogram(last_flip_histogram(last_flip, num_epochs), last_flip.numel())


def freeze_epoch(last_flip: torch.Tensor, q: float) -> int:
    """E_q: the first epoch e such that at least a fraction q of weights have L_i <= e."""
    return freeze_epoch_from(stable_fraction(last_flip, int(last_flip.max())), q)


# ---- snapshots ----------------------------------------------------------------------------

def snapshot_wanted(epoch: int, every: int, epochs: Collection[int], last: bool) -> bool:
    """Whether the end of `epoch` (1-based) gets a snapshot: a multiple of `every` (0: none),
    listed in `epochs`, or the last epoch. The callback writes and the analysis expects by it."""
    return last or epoch in epochs or (every > 0 and epoch % every == 0)


def model_signs(model: nn.Module) -> dict[str, torch.Tensor]:
    """The signs every binary layer of `model` uses in forward, by layer name (bool, True = +1)."""
    return {name: layer.signs().detach().cpu() for name, layer in binary_layers(model).items()}


def snapshot_path(run_dir: str | Path, epoch: int) -> Path:
    """<run_dir>/signs/epoch_NNN.pt (epoch 000 = initialisation)."""
    return Path(run_dir) / "signs" / f"epoch_{epoch:03d}.pt"


def list_snapshots(run_dir: str | Path) -> dict[int, Path]:
    """Snapshot files of a run directory by epoch."""
    folder = Path(run_dir) / "signs"
    found = {}
    for p in folder.glob("epoch_*.pt") if folder.is_dir() else []:
        m = _SNAPSHOT_RE.search(p.name)
        if m:
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def save_snapshot(path: str | Path, signs: dict[str, torch.Tensor], epoch: int) -> Path:
    """Write signs bit-packed (1 bit per weight) with names and shapes; atomic.

    All layers go into one packed uint8 tensor (layers concatenated in order, flattened
    row-major, LSB first as qbn.binary.pack_bits), so the file is N/8 bytes plus one small
    header (format, epoch, names, shapes) and the zip container's fixed overhead.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = torch.cat([s.detach().reshape(-1).bool().cpu() for s in signs.values()]) if signs else torch.zeros(0, dtype=torch.bool)
    payload = {
        "format": SNAPSHOT_FORMAT, "epoch": int(epoch),
        # one line per layer, "name d0,d1,...": a few bytes per layer instead of pickled lists
        "layers": "\n".join(f"{name} {','.join(str(d) for d in s.shape)}" for name, s in signs.items()),
        "bits": pack_bits(flat),
    }
    tmp = path.with_suffix(".tmp")
    # The legacy (non-zip) container costs ~450 bytes where the zip one costs ~1.6 kB: it keeps
    # a ResNet-20 snapshot within 1.02 x N/8 bytes plus names. Both load with weights_only.
    torch.save(payload, tmp, _use_new_zipfile_serialization=False)
    os.replace(tmp, path)
    return path


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def snapshot_layers(payload: dict) -> tuple[list[str], list[list[int]]]:
    """Layer names and shapes of a loaded snapshot payload (the "layers" header)."""
    names, shapes = [], []
    for line in payload["layers"].splitlines():
        name, _, dims = line.rpartition(" ")
        names.append(name)
        shapes.append([int(d) for d in dims.split(",")] if dims else [])
    return names, shapes


def load_snapshot(path: str | Path) -> dict[str, torch.Tensor]:
    """Signs by layer name (bool tensors shaped like the weights). weights_only, validated."""
    path = Path(path)
    if not path.exists():
        raise SnapshotError(f"sign snapshot {path} is missing")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        fmt = payload.get("format")
        if fmt != SNAPSHOT_FORMAT:
            raise ValueError(f"format {fmt!r}")
        names, shapes = snapshot_layers(payload)
        sizes = [_numel(shape) for shape in shapes]
        flat = unpack_bits(payload["bits"], sum(sizes))
        chunks = flat.split(sizes) if sizes else []
        return {name: chunk.view(*shape) for name, shape, chunk in zip(names, shapes, chunks, strict=False)}
    except Exception as e:  # noqa: BLE001  truncated or foreign files all end here
        detail = str(e).splitlines()[0][:160] if str(e) else ""
        reason = f"{type(e).__name__}: {detail}" if detail else type(e).__name__
        raise SnapshotError(f"sign snapshot {path} is unreadable or truncated ({reason}); "
                            "delete it or rerun that epoch") from None


def stack_history(snapshots: list[dict[str, torch.Tensor]], layers: list[str] | None = None) -> torch.Tensor:
    """(E + 1) x N history from per-epoch snapshots, over `layers` (default: all, concatenated)."""
    names = layers or list(snapshots[0])
    return torch.stack([torch.cat([s[n].flatten() for n in names]) for s in snapshots])


if __name__ == "__main__":
    # `python -m qbn.signs RUN_DIR` is the qbn-signs command, whose analysis lives a layer above this
    # module (qbn.analysis.sign_dynamics): run that module as the script rather than import upwards.
    import runpy

    runpy.run_module("qbn.analysis.sign_dynamics", run_name="__main__", alter_sys=True)
