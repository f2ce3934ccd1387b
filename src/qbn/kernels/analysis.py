"""kernels.json: the kernel statistics of a run (per layer, overall, over training) from signs."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..errors import QbnError
from ..run import write_json
from ..signs import SnapshotError, list_snapshots, load_snapshot
from .sources import kernel_signs
from .stats import NUM_IDS, entropy, histogram, kernel_ids, summarize, top_shares

KERNELS_FORMAT = "qbn-kernels-v1"
log = logging.getLogger("qbn.kernels")


def layer_histograms(signs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """512-bin histogram of each 3x3 layer's kernels."""
    return {k: histogram(kernel_ids(v)) for k, v in kernel_signs(signs).items()}


def overall_histogram(hists: dict[str, torch.Tensor]) -> torch.Tensor:
    """The histogram over all layers' kernels (zeros when there are no layers)."""
    return sum(hists.values()) if hists else torch.zeros(NUM_IDS, dtype=torch.long)


def history(run_dir: str | Path) -> dict[int, dict]:
    """Overall kernel statistics at each sign snapshot of a run (epoch 0 = initialisation)."""
    out = {}
    for epoch, path in list_snapshots(run_dir).items():
        try:
            hist = overall_histogram(layer_histograms(load_snapshot(path)))
        except SnapshotError as e:   # an unreadable snapshot only loses its point of the history
            log.warning("kernel history: skipping %s (%s)", path, e)
            continue
        if hist.sum() == 0:
            continue
        out[epoch] = {"entropy": entropy(hist), **top_shares(hist), "histogram": [int(c) for c in hist]}
    return out


def kernel_stats(signs: dict[str, torch.Tensor], run_dir: str | Path | None = None, **meta) -> dict:
    """The kernels.json content for the signs of every binary layer (plus the snapshot history of
    `run_dir`): 3x3 layers are counted, the others (1x1 shortcuts, linear) listed as not_counted."""
    hists = layer_histograms(signs)
    if not hists:
        raise QbnError("no 3x3 binary convs found: kernel statistics need a BWN with 3x3 binary layers")
    stats = {"format": KERNELS_FORMAT, **meta,
             "layers_counted": list(hists),
             "not_counted": [k for k in signs if k not in hists],
             "overall": summarize(overall_histogram(hists)),
             "layers": {k: summarize(h) for k, h in hists.items()}}
    if run_dir is not None:
        stats["history"] = {str(e): v for e, v in history(run_dir).items()}
    return stats


def write_kernel_stats(run_dir: str | Path, stats: dict) -> Path:
    path = Path(run_dir) / "kernels.json"
    write_json(path, stats)
    return path
