"""A rewound run's trunk: finding its run directory, and reading the signs (S_K, controls, stable
masks) and the saved training states a rewound run starts from."""

from __future__ import annotations

from pathlib import Path

import torch

from ..rundir import RunDir
from ..signs import (
    SnapshotError,
    distance_to_final,
    last_flip_epochs,
    list_share_snapshots,
    list_snapshots,
    load_snapshot,
    share_label,
    snapshot_path,
    stack_history,
)
from .spec import RewindError, SignSpec, WeightSpec

TRUNK_OPTION = "rewind=trunk"


def find_trunk(trunk: str, output_dir: str | Path) -> Path:
    """A trunk run directory from an explicit path, or the newest completed run under
    <output_dir>/<trunk>/ (rewound runs excluded)."""
    if not trunk or str(trunk) in ("???", "None", "null"):
        raise RewindError("rewind.trunk is not set: give a run name (outputs/<name>/) or a run directory")
    path = Path(str(trunk)).expanduser()
    if RunDir(path).hydra_dir.is_dir() or RunDir(path).summary.exists():
        return _check_completed(path)
    folder = Path(output_dir) / str(trunk)
    if not folder.is_dir():
        raise RewindError(f"trunk '{trunk}' not found: it is neither a run directory nor a run name with runs under "
                          f"{folder}. Train one first: python -m qbn.train name={trunk} {TRUNK_OPTION} ...")
    runs = []
    for d in folder.iterdir():
        s = RunDir(d).read_summary_or_none() if d.is_dir() else None   # a damaged run is no completed trunk: skipped
        if s and s.get("status") == "completed" and not s.get("rewind/trunk"):
            runs.append((RunDir(d).summary.stat().st_mtime, d))
    if not runs:
        raise RewindError(f"trunk '{trunk}': no completed run under {folder}. Train one first: "
                          f"python -m qbn.train name={trunk} {TRUNK_OPTION} ...")
    return max(runs)[1]


def check_outside_trunk(run_dir: str | Path, trunk_dir: Path) -> None:
    """A rewound run never writes into its trunk's directory."""
    here = Path(run_dir).resolve()
    if here == trunk_dir or trunk_dir in here.parents:
        raise RewindError(f"this run's directory {here} is inside its trunk {trunk_dir}: "
                          "a rewound run never writes there")


def _check_completed(path: Path) -> Path:
    s = RunDir(path).read_summary()
    if not s or s.get("status") != "completed":
        state = "has no summary.json" if not s else f"has status {s.get('status')!r}"
        raise RewindError(f"trunk {path} {state}: rewinding needs a completed trunk run")
    return path


def trunk_last_epoch(trunk_dir: Path) -> int:
    """E: the trunk's number of completed epochs (the epoch of its final signs)."""
    summary = RunDir(trunk_dir).read_summary() or {}
    if summary.get("epochs") is not None:
        return int(summary["epochs"])
    snaps = list_snapshots(trunk_dir)
    if not snaps:
        raise RewindError(f"trunk {trunk_dir}: summary.json has no 'epochs' and there are no sign snapshots")
    return max(snaps)


def _resolve_epoch(value, last: int, what: str, trunk_dir: Path) -> int:
    k = last if value == "last" else int(value)
    if k < 0 or k > last:
        raise RewindError(f"{what}: epoch {k} is beyond trunk {trunk_dir}, which trained epochs 0..{last}")
    return k


def _snapshot(trunk_dir: Path, epoch: int) -> dict[str, torch.Tensor]:
    path = snapshot_path(trunk_dir, epoch)
    if not path.exists():
        raise RewindError(f"trunk {trunk_dir} lacks {path} (its sign snapshot of epoch {epoch}). A trunk saves "
                          f"snapshots with callbacks.sign_snapshots on (or {TRUNK_OPTION}); retrain the trunk with it.")
    try:
        return load_snapshot(path)
    except SnapshotError as e:
        raise RewindError(str(e)) from None


def share_checkpoint_path(run_dir: str | Path, share: float) -> Path:
    """<run_dir>/checkpoints/share_F.ckpt: a trunk's full training state after step round(F * total steps)."""
    return RunDir(run_dir).share_ckpt(share_label(share))


def _share_snapshot(trunk_dir: Path, share: float, what: str) -> dict[str, torch.Tensor]:
    """The trunk's signs at a share of training (signs/share_F.pt); one line listing the saved shares if absent."""
    saved = list_share_snapshots(trunk_dir)
    path = next((p for f, p in saved.items() if abs(f - share) < 1e-9), None)
    if path is None:
        listing = ", ".join(share_label(f) for f in saved) or "none"
        raise RewindError(f"{what}: trunk {trunk_dir} saved no signs at share {share_label(share)} of training (saved "
                          f"shares: {listing}); train the trunk with {TRUNK_OPTION} 'rewind.save_shares=[...]' "
                          "listing it")
    try:
        return load_snapshot(path)
    except SnapshotError as e:
        raise RewindError(str(e)) from None


def random_signs(reference: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random signs, each weight +1 with probability = its layer's +1 share in `reference`."""
    out = {}
    for name, s in reference.items():
        p = s.float().mean().item()
        out[name] = torch.rand(s.shape, generator=generator) < p
    return out


def stable_mask(history: torch.Tensor, k: int) -> torch.Tensor:
    """Flat bool mask of the weights whose last-flip epoch L_i <= k (docs/study.md)."""
    return last_flip_epochs(history) <= k


def select_signs(trunk_dir: Path, spec: SignSpec, last: int, seed: int) -> tuple[dict, dict | None, int | None]:
    """(signs, mask or None, K) for `spec` from the trunk's snapshots (K is None for a share spec)."""
    what = f"rewind.signs={spec.text}"
    if spec.mode == "share":
        return _share_snapshot(trunk_dir, spec.share, what), None, None
    if spec.mode == "random" and spec.share is not None:
        g = torch.Generator().manual_seed(int(seed) * 7919 + 17)
        return random_signs(_share_snapshot(trunk_dir, spec.share, what), g), None, None
    if spec.mode == "final":
        return _snapshot(trunk_dir, last), None, last
    if spec.mode == "epoch":
        k = _resolve_epoch(spec.epoch, last, f"rewind.signs={spec.text}", trunk_dir)
        return _snapshot(trunk_dir, k), None, k
    if spec.mode == "random":
        k = last if spec.epoch is None else _resolve_epoch(spec.epoch, last, f"rewind.signs={spec.text}", trunk_dir)
        g = torch.Generator().manual_seed(int(seed) * 7919 + 17)
        return random_signs(_snapshot(trunk_dir, k), g), None, (None if spec.epoch is None else k)
    if spec.mode == "stable":
        k = _resolve_epoch(spec.epoch, last, f"rewind.signs={spec.text}", trunk_dir)
        snaps = [_snapshot(trunk_dir, e) for e in range(last + 1)]
        final = snaps[-1]
        # L_i is per weight, so each layer's own history gives its part of the mask
        mask = {name: stable_mask(stack_history(snaps, [name]), k).view(s.shape) for name, s in final.items()}
        return final, mask, k
    raise RewindError(f"rewind.signs={spec.text!r} is not understood")


def share_final(trunk_dir: Path, last: int) -> list[float] | None:
    """1 - d_K for K = 0..E from the trunk's snapshots (None when some are missing)."""
    snaps = list_snapshots(trunk_dir)
    if any(e not in snaps for e in range(last + 1)):
        return None
    history = stack_history([load_snapshot(snaps[e]) for e in range(last + 1)])
    return (1 - distance_to_final(history)).tolist()


def weights_file(trunk_dir: Path, spec: WeightSpec, last: int) -> tuple[Path | None, int | None]:
    """(file, J): the trunk file a rewound run restarts from (None for fresh)."""
    if spec.mode == "fresh":
        return None, None
    if spec.mode == "init":
        path = RunDir(trunk_dir).init_ckpt
        if not path.exists():
            raise RewindError(f"trunk {trunk_dir} lacks {path} (its epoch-0 state). A trunk saves it with "
                              f"{TRUNK_OPTION} (callbacks.rewind_points); retrain the trunk with it, "
                              "or use rewind.weights=fresh.")
        return path, 0
    j = _resolve_epoch(spec.epoch, last, f"rewind.weights={spec.text}", trunk_dir)
    path = RunDir(trunk_dir).epoch_ckpt(j)
    if not path.exists() and j == last and RunDir(trunk_dir).last_ckpt.exists():
        path = RunDir(trunk_dir).last_ckpt
    if not path.exists():
        raise RewindError(f"trunk {trunk_dir} lacks {path} (its state at the end of epoch {j}). A trunk saves it with "
                          f"{TRUNK_OPTION} rewind.save_weights=[{j}]; retrain the trunk with it.")
    return path, j
