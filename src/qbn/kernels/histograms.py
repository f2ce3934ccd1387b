"""Kernel statistics of 3x3 binary convs (docs/study.md): kernel ids, 512-bin histograms, the
sign-symmetric 256-class view, entropy and top-k coverage. Vectorised, no loop over kernels."""

from __future__ import annotations

import math

import torch

from ..binary.kernel_mapping import NUM_IDS, ids_to_kernels, is_kernel_tensor, kernel_ids

NUM_CLASSES = 256
__all__ = ["NUM_CLASSES", "NUM_IDS", "coverage", "entropy", "entropy_miller_madow", "histogram", "null_stats",
           "shuffled_signs", "ids_to_kernels", "is_kernel_tensor",
           "kernel_ids", "layer_histograms", "most_frequent", "overall_histogram", "summarize", "symmetric_class",
           "top_shares", "uniform_coverage"]


def symmetric_class(ids: torch.Tensor) -> torch.Tensor:
    """Sign-symmetric class min(id, 511 - id): a kernel and its negation share a class (256)."""
    return torch.minimum(ids, NUM_IDS - 1 - ids)


def histogram(ids: torch.Tensor, bins: int = NUM_IDS) -> torch.Tensor:
    """Counts of each id (LongTensor of `bins`)."""
    return torch.bincount(ids.reshape(-1).long(), minlength=bins)[:bins]


def entropy(hist: torch.Tensor) -> float:
    """H = -sum p log2 p in bits per kernel (0 log 0 = 0)."""
    total = hist.sum().item()
    if total == 0:
        return 0.0
    p = hist.double() / total
    p = p[p > 0]
    return float(-(p * torch.log2(p)).sum().item())


def entropy_miller_madow(hist: torch.Tensor) -> float:
    """Miller-Madow bias-corrected entropy in bits: H_plugin + (m - 1) / (2 N ln 2), with m the
    non-empty bins and N the kernels counted (the plug-in estimate is biased low by about that)."""
    total = int(hist.sum().item())
    if total == 0:
        return 0.0
    m = int((hist > 0).sum().item())
    return entropy(hist) + (m - 1) / (2 * total * math.log(2))


def coverage(hist: torch.Tensor) -> torch.Tensor:
    """C(k) for k = 1..len(hist): share of kernels whose id is among the k most frequent."""
    total = max(hist.sum().item(), 1)
    return torch.sort(hist.double(), descending=True).values.cumsum(0) / total


def uniform_coverage(bins: int = NUM_IDS) -> torch.Tensor:
    """The reference: C(k) = k / bins for a uniform distribution over the ids."""
    return torch.arange(1, bins + 1, dtype=torch.float64) / bins


def most_frequent(hist: torch.Tensor, k: int) -> torch.Tensor:
    """The k most frequent ids, most frequent first; equal counts go to the lower id (stable)."""
    if not 1 <= k <= hist.numel():
        raise ValueError(f"cannot pick {k} codewords from {hist.numel()} ids")
    return torch.sort(hist, descending=True, stable=True).indices[:k].clone()


def top_shares(hist: torch.Tensor, ks=(1, 8, 32)) -> dict[str, float]:
    """C(k) for the given k, keyed 'top1', 'top8', ..."""
    cov = coverage(hist)
    return {f"top{k}": float(cov[k - 1].item()) for k in ks}


def shuffled_signs(signs: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The null model: each layer's signs permuted at random within the layer (same shape, exactly
    the same number of +1), so any kernel structure beyond the per-layer balance is gone."""
    out = {}
    for name, s in signs.items():
        flat = s.reshape(-1).cpu()
        out[name] = flat[torch.randperm(flat.numel(), generator=generator)].view(s.shape)
    return out


def _entropies_and_coverage(hist: torch.Tensor) -> dict:
    return {"entropy": entropy(hist), "entropy_mm": entropy_miller_madow(hist), "coverage": top_shares(hist)}


def null_stats(signs: dict[str, torch.Tensor], seed: int = 0) -> dict:
    """Kernel statistics of the shuffled null (shuffled_signs, seeded) of the 3x3 layers of `signs`:
    {"overall": {entropy, entropy_mm, coverage: {top1, top8, top32}}, "layers": {name: the same}}."""
    hists = layer_histograms(shuffled_signs({k: v for k, v in signs.items() if is_kernel_tensor(v)},
                                            torch.Generator().manual_seed(int(seed))))
    return {"overall": _entropies_and_coverage(overall_histogram(hists)),
            "layers": {k: _entropies_and_coverage(h) for k, h in hists.items()}}


def summarize(hist: torch.Tensor, top: int = 32) -> dict:
    """Everything kernels.json holds for one histogram (512 ids)."""
    sym = torch.zeros(NUM_CLASSES, dtype=torch.long).index_add_(0, symmetric_class(torch.arange(NUM_IDS)),
                                                                  hist.long().cpu())
    order = most_frequent(hist, min(top, hist.numel()))
    total = int(hist.sum().item())
    return {
        "kernels": total,
        "distinct": int((hist > 0).sum().item()),
        "entropy": entropy(hist),
        "entropy_mm": entropy_miller_madow(hist),
        "entropy_symmetric": entropy(sym),
        **top_shares(hist),
        "uniform": {f"top{k}": k / NUM_IDS for k in (1, 8, 32)},
        "coverage": [round(float(c), 6) for c in coverage(hist)],
        "top_ids": [int(i) for i in order],
        "top_counts": [int(hist[i]) for i in order],
        "histogram": [int(c) for c in hist],
        "histogram_symmetric": [int(c) for c in sym],
    }


def layer_histograms(signs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """512-bin histogram of each 3x3 layer's kernels."""
    return {k: histogram(kernel_ids(v)) for k, v in signs.items() if is_kernel_tensor(v)}


def overall_histogram(hists: dict[str, torch.Tensor]) -> torch.Tensor:
    """The histogram over all layers' kernels (zeros when there are no layers)."""
    return sum(hists.values()) if hists else torch.zeros(NUM_IDS, dtype=torch.long)
