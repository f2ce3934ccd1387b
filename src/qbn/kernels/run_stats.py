"""kernels.json and figures/kernels_*.png: the kernel statistics of a run (per layer, overall, over
training) from signs, written by the KernelStats callback and by `python -m qbn.kernels`."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..errors import QbnError
from ..file_io import write_json
from ..rundir import RunDir
from ..signs import SnapshotError, list_snapshots, load_snapshot
from .histograms import (
    entropy,
    entropy_miller_madow,
    layer_histograms,
    null_stats,
    overall_histogram,
    summarize,
    top_shares,
)
from .kernel_figures import write_figures

NULL_SEED = 0   # the shuffled null's seed: one fixed draw, so kernels.json is reproducible

KERNELS_FORMAT = "qbn-kernels-v1"
log = logging.getLogger("qbn.kernels")


def history(run_dir: str | Path) -> dict[int, dict]:
    """Overall kernel statistics at each sign snapshot of a run (epoch 0 = initialisation), each with
    its shuffled null."""
    out = {}
    for epoch, path in list_snapshots(run_dir).items():
        try:
            signs = load_snapshot(path)
        except SnapshotError as e:   # an unreadable snapshot only loses its point of the history
            log.warning("kernel history: skipping %s (%s)", path, e)
            continue
        hist = overall_histogram(layer_histograms(signs))
        if hist.sum() == 0:
            continue
        out[epoch] = {"entropy": entropy(hist), "entropy_mm": entropy_miller_madow(hist), **top_shares(hist),
                      "null": null_stats(signs, NULL_SEED)["overall"], "histogram": [int(c) for c in hist]}
    return out


def kernel_stats(signs: dict[str, torch.Tensor], run_dir: str | Path | None = None, **meta) -> dict:
    """The kernels.json content for the signs of every binary layer (plus the snapshot history of
    `run_dir`): 3x3 layers are counted, the others (1x1 shortcuts, linear) listed as not_counted."""
    hists = layer_histograms(signs)
    if not hists:
        raise QbnError("no 3x3 binary convs found: kernel statistics need a BWN with 3x3 binary layers")
    null = null_stats(signs, NULL_SEED)
    stats = {"format": KERNELS_FORMAT, **meta,
             "layers_counted": list(hists),
             "not_counted": [k for k in signs if k not in hists],
             "null_model": f"each layer's signs shuffled within the layer (same +1 count), seed {NULL_SEED}",
             "overall": {**summarize(overall_histogram(hists)), "null": null["overall"]},
             "layers": {k: {**summarize(h), "null": null["layers"][k]} for k, h in hists.items()}}
    if run_dir is not None:
        stats["history"] = {str(e): v for e, v in history(run_dir).items()}
    return stats


def write_kernel_stats(run_dir: str | Path, stats: dict) -> Path:
    path = RunDir(run_dir).kernels_json
    write_json(path, stats)
    return path


def summary_fields(stats: dict) -> dict:
    """The headline kernel figures for summary.json."""
    o = stats["overall"]
    fields = {"kernels/entropy": o["entropy"], "kernels/top1": o["top1"], "kernels/top8": o["top8"],
              "kernels/top32": o["top32"], "kernels/entropy_mm": o["entropy_mm"]}
    null = o.get("null")
    if null:
        fields.update({"kernels/null_entropy": null["entropy"], "kernels/null_entropy_mm": null["entropy_mm"],
                       **{f"kernels/null_{k}": v for k, v in null["coverage"].items()}})
    return fields


def write_run_kernels(run_dir: str | Path, signs: dict, layers: list[str] | None = None, figures: bool = True,
                      **meta) -> dict:
    """kernels.json + figures (unless figures=False) for `signs` in `run_dir` (shared by the callback and the CLI)."""
    stats = kernel_stats(signs, run_dir=run_dir, **meta)
    write_kernel_stats(run_dir, stats)
    if figures:
        written = write_figures(stats, RunDir(run_dir).figures, layers)
        stats["figures"] = [str(p.relative_to(run_dir)) for p in written]
        write_kernel_stats(run_dir, stats)
    return stats
