"""Figures of kernel statistics (Agg backend), all drawn from a kernels.json dict."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..analysis.figure_files import pyplot, save_figure
from .histograms import NUM_IDS, ids_to_kernels


def _short(name: str) -> str:
    """layer2.1.conv1 -> L2.1.c1 (tick labels stay readable)."""
    return re.sub(r"^layer", "L", name).replace(".conv", ".c")


def coverage_figure(stats: dict, path: Path) -> Path:
    """Top-k coverage C(k) per layer and overall against the uniform distribution (k/512)."""
    plt = pyplot()
    k = np.arange(1, NUM_IDS + 1)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    layers = stats["layers"]
    cmap = plt.get_cmap("viridis")
    for i, (name, s) in enumerate(layers.items()):
        ax.plot(k, 100 * np.array(s["coverage"]), color=cmap(i / max(len(layers) - 1, 1)), lw=0.9, alpha=0.8,
                label=_short(name) if len(layers) <= 12
                else ("layers: shallow (purple) to deep (yellow)" if i == 0 else None))
    ax.plot(k, 100 * np.array(stats["overall"]["coverage"]), color="black", lw=2.2, label="all layers")
    ax.plot(k, 100 * k / NUM_IDS, color="red", ls="--", lw=1.5, label="uniform (k/512)")
    for kk in (8, 32):
        ax.axvline(kk, color="grey", lw=0.5, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_xlim(1, NUM_IDS)
    ax.set_ylim(0, 100)
    ax.set_xlabel("k (most frequent kernel ids)")
    ax.set_ylabel("top-k coverage C(k) (%)")
    o = stats["overall"]
    ax.set_title(f"kernel coverage: top-8 {100 * o['top8']:.1f} % (uniform 1.6 %), H = {o['entropy']:.2f} bits")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)


def top_kernels_figure(summaries: dict[str, dict], path: Path, top: int = 32) -> Path:
    """The top kernels as 3x3 tiles (white = +1, black = -1) with their share, one row block per entry."""
    plt = pyplot()
    cols = 8
    rows_per = (top + cols - 1) // cols
    nrows = rows_per * len(summaries)
    fig, axes = plt.subplots(nrows, cols, figsize=(cols * 0.95, nrows * 1.05 + 0.5), squeeze=False)
    for b, (title, s) in enumerate(summaries.items()):
        ids, counts = s["top_ids"][:top], s["top_counts"][:top]
        total = max(s["kernels"], 1)
        for j in range(rows_per * cols):
            ax = axes[b * rows_per + j // cols, j % cols]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(ids):
                ax.axis("off")
                continue
            tile = ids_to_kernels(torch.tensor(ids[j])).numpy()
            ax.imshow(tile, cmap="gray", vmin=-1, vmax=1)
            ax.set_title(f"#{ids[j]} {100 * counts[j] / total:.1f}%", fontsize=7)
            for spine in ax.spines.values():
                spine.set_edgecolor("#cc3311")
        axes[b * rows_per, 0].set_ylabel(_short(title), fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle("most frequent 3x3 kernels (white = +1, black = -1): id and share", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / nrows))
    return _save(fig, path)


def entropy_figure(stats: dict, path: Path) -> Path:
    """Entropy per layer (bits per kernel) against the 9-bit maximum."""
    plt = pyplot()
    names = list(stats["layers"])
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(names) + 2), 3.8))
    ax.bar(range(len(names)), [stats["layers"][n]["entropy"] for n in names], color="#4477aa")
    ax.axhline(9, color="red", ls="--", lw=1, label="uniform: 9 bits")
    ax.axhline(stats["overall"]["entropy"], color="black", lw=1, label=f"all layers: {stats['overall']['entropy']:.2f}")
    ax.set_xticks(range(len(names)), [_short(n) for n in names], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("entropy H (bits per kernel)")
    ax.set_ylim(0, 9.5)
    ax.set_title("kernel entropy per layer")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def history_figure(stats: dict, path: Path) -> Path | None:
    """Overall entropy and top-1/8/32 coverage at each sign snapshot (needs two or more)."""
    hist = stats.get("history") or {}
    if len(hist) < 2:
        return None
    plt = pyplot()
    epochs = sorted(int(e) for e in hist)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    a1.plot(epochs, [hist[str(e)]["entropy"] for e in epochs], marker="o", color="black")
    a1.set_xlabel("epoch (0 = initialisation)")
    a1.set_ylabel("entropy (bits per kernel)")
    a1.set_title("kernel entropy over training")
    for key, color in (("top1", "#4477aa"), ("top8", "#ee6677"), ("top32", "#228833")):
        a2.plot(epochs, [100 * hist[str(e)][key] for e in epochs], marker="o", color=color, label=f"C({key[3:]})")
        a2.axhline(100 * int(key[3:]) / NUM_IDS, color=color, ls=":", lw=0.8)
    a2.set_xlabel("epoch (0 = initialisation)")
    a2.set_ylabel("coverage (%), dotted: uniform")
    a2.set_title("top-k coverage over training")
    a2.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    return save_figure(fig, path, tight=False)  # these figures set their own layout


def shown_layers(stats: dict, chosen: list[str] | None = None) -> list[str]:
    """Layers whose top kernels get drawn: the chosen ones, else the first, middle and last."""
    names = list(stats["layers"])
    if chosen:
        return [n for n in chosen if n in stats["layers"]]
    picks = [names[0], names[len(names) // 2], names[-1]] if names else []
    return list(dict.fromkeys(picks))


def write_figures(stats: dict, figures_dir: str | Path, layers: list[str] | None = None, top: int = 32) -> list[Path]:
    """Every kernel figure of a run into figures_dir; returns the files written."""
    d = Path(figures_dir)
    out = [coverage_figure(stats, d / "kernels_coverage.png"), entropy_figure(stats, d / "kernels_entropy.png")]
    summaries = {"all layers": stats["overall"], **{n: stats["layers"][n] for n in shown_layers(stats, layers)}}
    out.append(top_kernels_figure(summaries, d / "kernels_top32.png", top))
    h = history_figure(stats, d / "kernels_history.png")
    if h:
        out.append(h)
    return out
