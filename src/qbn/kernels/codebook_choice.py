"""QBN codebooks (docs/study.md): the 2^n most frequent kernel ids, and the bit accounting /
bit-budget choice of n. The mapping c* = argmax_{c in K} <w, c> and its STE are binary-layer
mathematics (qbn.binary.kernel_mapping), imported here for one public kernels API."""

from __future__ import annotations

import torch

from ..binary.kernel_mapping import map_to_codebook, quantize_ste, quantized_kernels
from ..errors import ConfigError
from .histograms import NUM_IDS, coverage, most_frequent

MIN_BITS, MAX_BITS = 1, 9

__all__ = ["MAX_BITS", "MIN_BITS", "CodebookError", "bits_accounting", "check_bits", "choose_bits_for_budget",
           "layer_bits", "map_to_codebook", "quantize_ste", "quantized_kernels", "select_codebook"]


class CodebookError(ConfigError):
    pass


def check_bits(n: int) -> int:
    """n must be an integer in 1..9 (9 = every kernel, the BWN itself)."""
    if isinstance(n, bool) or not isinstance(n, int) or not MIN_BITS <= n <= MAX_BITS:
        raise CodebookError(f"qbn.bits={n!r}: the number of bits per kernel must be an integer from 1 to 9 "
                            "(2^n codewords; 9 keeps every kernel, the BWN itself)")
    return n


def select_codebook(hist: torch.Tensor, n: int) -> torch.Tensor:
    """Codebook K: the 2^n most frequent ids of a 512-bin histogram, most frequent first."""
    return most_frequent(hist, 2 ** check_bits(n))


# ---- bits ---------------------------------------------------------------------------------

def layer_bits(kernels: int, n: int | None, codebook_bits: bool = True) -> int:
    """Storage of one 3x3 layer: 9 bits per kernel unquantized (n None or 9), else n bits per
    kernel plus 9 * 2^n bits of codebook (left out when the codebook is shared and counted once)."""
    if n is None or n == MAX_BITS:
        return 9 * kernels
    return n * kernels + (9 * 2 ** n if codebook_bits else 0)


def bits_accounting(kernels: dict[str, int], bits: dict[str, int | None], other_binary_weights: int,
                    shared: bool = False) -> dict:
    """Bits per binarized weight (docs/study.md): quantized 3x3 layers at n bits per kernel plus their
    codebooks, every other binarized weight (non-3x3 layers, n = 9 layers) at 1 bit."""
    total = sum(layer_bits(kernels[k], bits.get(k), codebook_bits=not shared) for k in kernels)
    used = [n for n in bits.values() if n is not None and n < MAX_BITS]
    codebook = 9 * 2 ** max(used) if shared and used else 0
    total += codebook + other_binary_weights
    weights = 9 * sum(kernels.values()) + other_binary_weights
    return {"binary_bits": int(total), "binarized_weights": int(weights),
            "bits_per_weight": total / weights if weights else float("nan"), "shared_codebook_bits": codebook}


def _budget_costs(kernels: dict[str, int], budget: float, other_binary_weights: int) -> tuple[int, dict]:
    """Binarized weights and each layer's bits for every n; refuses a budget below the smallest codebooks."""
    weights = 9 * sum(kernels.values()) + other_binary_weights
    cost = {k: {n: layer_bits(kernels[k], n) for n in range(MIN_BITS, MAX_BITS + 1)} for k in kernels}
    floor = (sum(min(c.values()) for c in cost.values()) + other_binary_weights) / max(weights, 1)
    if not budget > 0 or budget + 1e-12 < floor:
        raise CodebookError(f"qbn.budget={budget}: the smallest codebooks allow at least {floor:.4f} bits per "
                            f"binarized weight for this model; ask for a budget >= {floor:.4f} (1.0 = the BWN)")
    return weights, cost


def choose_bits_for_budget(histograms: dict[str, torch.Tensor], budget: float,
                           other_binary_weights: int = 0) -> dict[str, int]:
    """n per layer so that bits per binarized weight <= budget, greedily changing the fewest
    signs: start at n = 9 everywhere and repeatedly take the move (a layer to a cheaper n) that
    adds the fewest uncovered kernels, K_l (1 - C_l(2^n)), per bit saved."""
    kernels = {k: int(h.sum().item()) for k, h in histograms.items()}
    weights, cost = _budget_costs(kernels, budget, other_binary_weights)
    cov = {k: coverage(h) for k, h in histograms.items()}
    uncovered = {k: {n: kernels[k] * (1 - float(cov[k][min(2 ** n, NUM_IDS) - 1])) for n in cost[k]} for k in kernels}
    chosen = {k: MAX_BITS for k in kernels}
    total = sum(cost[k][MAX_BITS] for k in kernels) + other_binary_weights
    while total > budget * weights + 1e-9:
        best = None
        for k in kernels:
            now = chosen[k]
            for n in range(MIN_BITS, now):
                saved = cost[k][now] - cost[k][n]
                if saved <= 0:
                    continue
                score = (uncovered[k][n] - uncovered[k][now]) / saved
                if best is None or score < best[0] - 1e-15:
                    best = (score, k, n)
        if best is None:   # cannot happen once the floor check passed; kept for safety
            raise CodebookError(f"qbn.budget={budget} cannot be met")
        _, k, n = best
        total -= cost[k][chosen[k]] - cost[k][n]
        chosen[k] = n
    return chosen


def flipped_share(weight: torch.Tensor, codebook: torch.Tensor) -> float:
    """Share of a layer's latent |w| mass whose sign the mapping to `codebook` flips:
    sum_kernels sum_{j: c*_j != sign(w_j)} |w_j| / sum |w| (0 when every kernel is a codeword)."""
    w = weight.detach().reshape(-1, 9).double()
    c = quantized_kernels(weight.detach(), codebook).reshape(-1, 9).double()
    flipped = (w.abs() * (c * torch.where(w >= 0, 1.0, -1.0) < 0)).sum()
    return float(flipped / w.abs().sum().clamp(min=1e-30))


def distortion_curve(weight: torch.Tensor, hist: torch.Tensor) -> dict[int, float]:
    """flipped_share for each n = 1..9 (codebook: the 2^n most frequent ids of `hist`; 9 = none)."""
    return {n: (flipped_share(weight, select_codebook(hist, n)) if n < MAX_BITS else 0.0)
            for n in range(MIN_BITS, MAX_BITS + 1)}


def choose_bits_by_distortion(curves: dict[str, dict[int, float]], kernels: dict[str, int], budget: float,
                              other_binary_weights: int = 0) -> dict[str, int]:
    """n per layer minimising the sum over layers of the flipped |w| share (each layer's relative
    weight error; BatchNorm after each conv makes a layer's scale irrelevant) with bits per
    binarized weight <= budget, rate-distortion style: a Lagrangian sweep (each layer takes
    argmin_n D_l(n) + lambda R_l(n), lambda bisected to the smallest that fits) then the bits
    left over spent greedily on the upgrades that remove the most distortion per bit."""
    weights, cost = _budget_costs(kernels, budget, other_binary_weights)
    limit = budget * weights - other_binary_weights + 1e-9

    def pick(lam: float) -> dict[str, int]:
        return {k: min(cost[k], key=lambda n: (curves[k][n] + lam * cost[k][n], cost[k][n])) for k in kernels}

    def total(chosen: dict[str, int]) -> int:
        return sum(cost[k][n] for k, n in chosen.items())

    lo, hi = 0.0, 1.0
    while total(pick(hi)) > limit:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if total(pick(mid)) > limit else (lo, mid)
    chosen = pick(hi)
    while True:   # spend what the hull step left: the best affordable upgrade per bit, one at a time
        spare = limit - total(chosen)
        moves = [((curves[k][chosen[k]] - curves[k][n]) / (cost[k][n] - cost[k][chosen[k]]), k, n)
                 for k in kernels for n in range(chosen[k] + 1, MAX_BITS + 1)
                 if 0 < cost[k][n] - cost[k][chosen[k]] <= spare and curves[k][n] < curves[k][chosen[k]]]
        if not moves:
            return chosen
        _, k, n = max(moves)
        chosen[k] = n
