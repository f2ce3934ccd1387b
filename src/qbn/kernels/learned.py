"""Learned codebooks (qbn.method=learned; after Sub-bit Neural Networks, Wang et al., ICCV 2021),
plain PyTorch: each quantized 3x3 layer gets 2^n real patterns (a Parameter, K x 3 x 3, one set
for all layers with a shared codebook); forward maps each kernel w to sign(p*) of the pattern
maximising <w, sign(p)> (qbn.binary.kernel_mapping.learned_ste); the patterns train with the rest.
Here: their start, the re-seeding of duplicates, and the freeze into a plain QBN codebook."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..binary import binary_layers
from ..binary.kernel_mapping import pattern_ids
from ..signs import flip_fraction
from .codebook_choice import MAX_BITS, CodebookError, select_codebook
from .histograms import NUM_IDS, ids_to_kernels, most_frequent
from .quantize import latent_histogram


def _magnitude(t: torch.Tensor) -> float:
    """A pattern's entries start at +-mean|t|, at most 1 (the clipped STE passes no gradient beyond 1)."""
    return float(t.detach().abs().mean().clamp(min=1e-6, max=1.0))


@torch.no_grad()
def init_patterns(layers: dict[str, nn.Module], bits: dict[str, int], shared: bool = False, init: str = "topk",
                  generator: torch.Generator | None = None) -> dict[str, dict]:
    """Give each layer with n < 9 its 2^n patterns (one set for all with `shared`): the 2^n most
    frequent latent kernels (init topk) or 2^n distinct random kernels (init random), each +-1 times
    the layers' mean |w|; n = 9 leaves a layer as the BWN. Reports per layer as qbn.kernels.quantize does."""
    for m in layers.values():
        if m.fixed_signs is not None:
            raise CodebookError("QBN cannot quantize a layer whose signs are fixed (rewinding): "
                                "use rewind=off with qbn")
    hists = {k: latent_histogram(m) for k, m in layers.items()}
    report: dict[str, dict] = {}
    for names in [list(layers)] if shared else [[k] for k in layers]:
        todo = [k for k in names if bits[k] < MAX_BITS]
        for k in names:
            if k not in todo:
                layers[k].clear_codebook()
                report[k] = {"bits": bits[k], "kernels": int(hists[k].sum()), "distinct": int((hists[k] > 0).sum()),
                             "quantized": False, "unchanged": True, "note": "n = 9: every kernel kept (the BWN itself)"}
        if not todo:
            continue
        n = bits[todo[0]]
        if init == "topk":
            ids = select_codebook(sum(hists[k] for k in todo), n)
        else:
            ids = torch.randperm(NUM_IDS, generator=generator)[: 2 ** n]
        weights = torch.cat([layers[k].weight.detach().reshape(-1) for k in todo])
        patterns = nn.Parameter(ids_to_kernels(ids).to(weights) * _magnitude(weights))
        for k in todo:
            before = layers[k].weight.detach() >= 0
            layers[k].set_patterns(patterns)
            changed = flip_fraction(before, layers[k].signs())
            hist = hists[k]
            report[k] = {"bits": n, "kernels": int(hist.sum()), "distinct": int((hist > 0).sum()), "quantized": True,
                         "codebook_coverage": float(hist[ids.to(hist.device)].sum()) / max(int(hist.sum()), 1),
                         "signs_changed": changed, "unchanged": changed == 0.0, "learned_init": init,
                         "initial_codebook": ids.tolist()}
    return report


def duplicate_rows(ids: torch.Tensor) -> torch.Tensor:
    """Positions of ids equal to an earlier one (the later copies of a duplicated pattern)."""
    same = ids.view(-1, 1) == ids.view(1, -1)
    return torch.nonzero(same.tril(-1).any(dim=1)).view(-1)


@torch.no_grad()
def reseed_duplicates(layers: dict[str, nn.Module]) -> list[tuple[nn.Parameter, torch.Tensor]]:
    """Re-seed every pattern whose sign vector repeats an earlier one's (it can never be chosen) to
    the most frequent latent kernel ids that no pattern covers (over the layers sharing the set),
    +-1 times the set's mean |p|. Returns (patterns, rows re-seeded) for each set changed."""
    sets: dict[int, tuple[nn.Parameter, list[nn.Module]]] = {}
    for m in layers.values():
        if m.patterns is not None:
            sets.setdefault(id(m.patterns), (m.patterns, []))[1].append(m)
    changed = []
    for patterns, members in sets.values():
        ids = pattern_ids(patterns)
        rows = duplicate_rows(ids)
        if not rows.numel():
            continue
        hist = sum(latent_histogram(m) for m in members).to(ids.device)
        free = torch.ones(NUM_IDS, dtype=torch.bool, device=ids.device)
        free[ids] = False
        new = most_frequent(torch.where(free, hist, torch.full_like(hist, -1)), rows.numel())
        patterns[rows] = ids_to_kernels(new).to(patterns) * _magnitude(patterns)
        changed.append((patterns, rows))
    return changed


@torch.no_grad()
def freeze_patterns(layers: dict[str, nn.Module]) -> dict[str, dict]:
    """Every learned layer's patterns become a fixed codebook of their sign ids (forward unchanged):
    from here on the model is a plain QBN model, packed like one. Returns, per layer, how many of
    its 2^n codewords are distinct (a duplicate is stored once in a packed file) and the codebook."""
    report = {}
    for k, m in layers.items():
        if m.patterns is None:
            continue
        ids = pattern_ids(m.patterns)
        m.freeze_patterns()
        report[k] = {"patterns": int(ids.numel()), "distinct_patterns": int(ids.unique().numel()),
                     "final_codebook": ids.tolist()}
    return report


def frozen_copy(net: nn.Module) -> nn.Module:
    """`net` itself when no layer has learned patterns, else a copy with them frozen (for packing a
    checkpoint saved before the end of training)."""
    if all(m.patterns is None for m in binary_layers(net).values()):
        return net
    net = copy.deepcopy(net)
    freeze_patterns(binary_layers(net))
    return net
