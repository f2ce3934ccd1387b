"""Sign dynamics (definitions: docs/study.md) and sign snapshots on disk.

A sign history is a bool tensor of shape (E + 1) x N: row e holds the signs (True = +1) at the end
of epoch e, row 0 at initialisation. Every figure below is computed from such a history, per
layer or over all binarized weights (rows concatenated across layers).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Collection, Sequence
from pathlib import Path

import torch
from torch import nn

from .binary import binary_layers, pack_bits, unpack_bits
from .errors import QbnError
from .rundir import RunDir

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


# ---- step resolution: each weight's last-flip step -----------------------------------------
# The sign-flip callback keeps, per binarized weight, the last optimizer step t (1-based: t = the
# trainer's global step after it) after which its sign differed from before it, 0 if it never
# flipped. From that one integer per weight come E_q as a share of training and the stable-share
# curve against steps, without epoch rounding.

LAST_FLIP_FORMAT = "qbn-last-flip-v1"


@torch.no_grad()
def update_last_flip(last: torch.Tensor, flipped: torch.Tensor, step: int) -> None:
    """In place: last = where(flipped, step, last) (`flipped`: after != before). No host sync."""
    last.masked_fill_(flipped, step)


def freeze_step(last_flip: torch.Tensor, q: float) -> int:
    """E_q in steps: the smallest step s such that at least a share q of weights have last-flip <= s."""
    flat = last_flip.reshape(-1)
    if flat.numel() == 0:
        raise ValueError("no weights: E_q is undefined")
    need = max(1, math.ceil(q * flat.numel() - 1e-9))   # weights that must have settled by s
    return int(torch.sort(flat.long()).values[need - 1].item())


def step_grid(total_steps: int, points: int = 100) -> list[int]:
    """About `points` + 1 steps from 0 to total_steps, evenly spaced (rounded, without repeats)."""
    return sorted({round(j * total_steps / points) for j in range(points + 1)})


def stable_share_at(last_flip: torch.Tensor, steps: Sequence[int]) -> list[float]:
    """For each s in `steps`, the share of weights whose last flip is <= s (nan without weights)."""
    flat = torch.sort(last_flip.reshape(-1).long()).values
    if flat.numel() == 0:
        return [float("nan")] * len(steps)
    counts = torch.searchsorted(flat, torch.as_tensor(list(steps), dtype=torch.long), right=True)
    return (counts.double() / flat.numel()).tolist()


def step_timing(last_flip: torch.Tensor, total_steps: int, grid: Sequence[int] | None = None,
                quantiles: Sequence[float] = (0.90, 0.95, 0.99)) -> dict:
    """The step-resolution sign figures of one set of last-flip steps (a layer, or all layers):
    ever_flipped, E_q_frac over all weights (never-flipped count as step 0) and E_q_frac_flipped
    over the weights that ever flip (None when none does), both as shares of total_steps, and
    the stable-share curve on `grid` (default: step_grid) over all and over the ever-flipped."""
    flat = last_flip.reshape(-1).long()
    total = max(int(total_steps), 1)
    grid = list(step_grid(total_steps) if grid is None else grid)
    flipped = flat[flat > 0]
    out: dict = {"num_weights": int(flat.numel()), "total_steps": int(total_steps),
                 "ever_flipped": float(flipped.numel() / max(flat.numel(), 1))}
    for q in quantiles:
        out[f"E_{q:.2f}_frac"] = freeze_step(flat, q) / total if flat.numel() else None
        out[f"E_{q:.2f}_frac_flipped"] = freeze_step(flipped, q) / total if flipped.numel() else None
    out["stable_share"] = {"steps": grid, "share_of_training": [s / total for s in grid],
                           "all": stable_share_at(flat, grid),
                           "flipped": stable_share_at(flipped, grid) if flipped.numel() else None}
    return out


def last_flip_path(run_dir: str | Path) -> Path:
    """<run_dir>/signs/last_flip_step.pt."""
    return RunDir(run_dir).last_flip


def save_last_flip(path: str | Path, last_flip: dict[str, torch.Tensor], total_steps: int) -> Path:
    """Write each layer's last-flip steps (int32, shaped like the weights) and the step count; atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": LAST_FLIP_FORMAT, "total_steps": int(total_steps),
               "last_flip": {name: t.detach().to("cpu", torch.int32).clone() for name, t in last_flip.items()}}
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_last_flip(path: str | Path) -> tuple[dict[str, torch.Tensor], int]:
    """({layer: int32 last-flip steps}, total steps) from a last_flip_step.pt. weights_only, validated."""
    path = Path(path)
    if not path.exists():
        raise SnapshotError(f"{path} is missing")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != LAST_FLIP_FORMAT:
            raise ValueError(f"format {payload.get('format')!r}")
        layers = {str(k): v.to(torch.int32) for k, v in payload["last_flip"].items()}
        return layers, int(payload["total_steps"])
    except Exception as e:  # noqa: BLE001  truncated or foreign files all end here
        raise SnapshotError(f"{path} is unreadable or truncated ({type(e).__name__}); "
                            "it is rewritten by the next training run") from None


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
    return RunDir(run_dir).sign_snapshot(epoch)


def share_step(share: float, total_steps: int) -> int:
    """The optimizer step that ends a share of training: round(share * total_steps) (Python's round)."""
    return round(float(share) * int(total_steps))


def share_label(share: float) -> str:
    """A share of training as it appears in file names and specs: 0.125 -> "0.125" (%g)."""
    return f"{float(share):g}"


def share_snapshot_path(run_dir: str | Path, share: float) -> Path:
    """<run_dir>/signs/share_F.pt: the signs after optimizer step round(F * total steps)."""
    return RunDir(run_dir).share_snapshot(share_label(share))


def list_share_snapshots(run_dir: str | Path) -> dict[float, Path]:
    """Share snapshots of a run directory by share, in increasing order."""
    folder = RunDir(run_dir).signs
    found = {}
    for p in folder.glob("share_*.pt") if folder.is_dir() else []:
        try:
            found[float(p.stem[len("share_"):])] = p
        except ValueError:
            continue
    return dict(sorted(found.items()))


def list_snapshots(run_dir: str | Path) -> dict[int, Path]:
    """Snapshot files of a run directory by epoch."""
    folder = RunDir(run_dir).signs
    found = {}
    for p in folder.glob("epoch_*.pt") if folder.is_dir() else []:
        m = _SNAPSHOT_RE.search(p.name)
        if m:
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def save_snapshot(path: str | Path, signs: dict[str, torch.Tensor], epoch: int, **extra: int | float) -> Path:
    """Write signs bit-packed (1 bit per weight) with names and shapes; atomic.

    All layers go into one packed uint8 tensor (layers concatenated in order, flattened
    row-major, LSB first as qbn.binary.pack_bits), so the file is N/8 bytes plus one small
    header (format, epoch, names, shapes) and the zip container's fixed overhead. `extra` adds
    plain numbers to the header (a share snapshot records its `step` and `share`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if signs:
        flat = torch.cat([s.detach().reshape(-1).bool().cpu() for s in signs.values()])
    else:
        flat = torch.zeros(0, dtype=torch.bool)
    payload = {
        "format": SNAPSHOT_FORMAT, "epoch": int(epoch),
        # one line per layer, "name d0,d1,...": a few bytes per layer instead of pickled lists
        "layers": "\n".join(f"{name} {','.join(str(d) for d in s.shape)}" for name, s in signs.items()),
        "bits": pack_bits(flat),
        **extra,
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
