"""QBN (STUDY.md): codebooks of the 2^n most frequent kernel ids, the mapping
c* = argmax_{c in K} <w, c> (one matmul per layer, ties to the more frequent codeword), the STE
that lets gradients reach the latent weights, and the bit accounting / bit-budget choice of n."""

from __future__ import annotations

import torch

from ..binary.ste import sign_ste
from ..errors import ConfigError
from .stats import NUM_IDS, coverage, ids_to_kernels, kernel_ids, most_frequent

MIN_BITS, MAX_BITS = 1, 9
# Scores within this share of the row's |w| sum count as a tie (float rounding of equal sums).
TIE_TOLERANCE = 1e-5


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


def map_to_codebook(weight: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index into `codebook` of c* = argmax_c <w, c> for each kernel w of an O x I x 3 x 3
    weight (LongTensor O x I); ties go to the earlier (more frequent) codeword.

    A kernel whose own sign pattern is a codeword maps to it (sign(w) maximises <w, c> over all
    +-1 kernels, by sum_j |w_j| - <w, c> = 2 sum_{c_j != sign(w_j)} |w_j|) unless some |w_j| is
    small enough for another codeword to tie; every other kernel takes the matmul (N x 9 by
    9 x 2^n), in row blocks of at most 4 MB of scores."""
    w = weight.detach().reshape(-1, 9)
    book = codebook.to(w.device).long()
    k = book.numel()
    tol = TIE_TOLERANCE * w.abs().sum(dim=1)
    own = kernel_ids((w >= 0).view(1, -1, 3, 3)).view(-1)
    position = torch.full((NUM_IDS,), k, dtype=torch.long, device=w.device)
    position.scatter_reduce_(0, book, torch.arange(k, device=w.device), reduce="amin")
    index = position[own]
    hard = torch.nonzero((index == k) | (2 * w.abs().amin(dim=1) <= tol)).view(-1)
    if hard.numel():
        codes = ids_to_kernels(book).reshape(-1, 9).to(w.dtype).T.contiguous()
        rows = hard.numel() if w.is_cuda else max(4096, 2 ** 20 // k)
        for start in range(0, hard.numel(), rows):
            sel = hard[start:start + rows]
            scores = w[sel] @ codes                                   # rows x 2^n
            best = scores.amax(dim=1, keepdim=True)
            near = scores >= best - tol[sel].unsqueeze(1)
            index[sel] = near.to(torch.uint8).argmax(dim=1)           # first (most frequent) of the ties
    return index.view(weight.shape[:2])


def quantized_kernels(weight: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """The +-1 codeword c* of every kernel, shaped like the weight (no gradient)."""
    index = map_to_codebook(weight, codebook)
    return ids_to_kernels(codebook.to(index.device)[index]).to(weight.dtype)


def quantize_ste(weight: torch.Tensor, codebook: torch.Tensor, ste: str = "clipped") -> torch.Tensor:
    """Forward: the codeword c* of each kernel; backward: the sign STE's gradient to the latent
    weight (unchanged, or only where |w| <= 1 when clipped)."""
    b = sign_ste(weight, ste)
    return b + (quantized_kernels(weight, codebook) - b).detach()


# ---- bits ---------------------------------------------------------------------------------

def layer_bits(kernels: int, n: int | None, codebook_bits: bool = True) -> int:
    """Storage of one 3x3 layer: 9 bits per kernel unquantized (n None or 9), else n bits per
    kernel plus 9 * 2^n bits of codebook (left out when the codebook is shared and counted once)."""
    if n is None or n == MAX_BITS:
        return 9 * kernels
    return n * kernels + (9 * 2 ** n if codebook_bits else 0)


def bits_accounting(kernels: dict[str, int], bits: dict[str, int | None], other_binary_weights: int,
                    shared: bool = False) -> dict:
    """Bits per binarized weight (STUDY.md): quantized 3x3 layers at n bits per kernel plus their
    codebooks, every other binarized weight (non-3x3 layers, n = 9 layers) at 1 bit."""
    total = sum(layer_bits(kernels[k], bits.get(k), codebook_bits=not shared) for k in kernels)
    used = [n for n in bits.values() if n is not None and n < MAX_BITS]
    codebook = 9 * 2 ** max(used) if shared and used else 0
    total += codebook + other_binary_weights
    weights = 9 * sum(kernels.values()) + other_binary_weights
    return {"binary_bits": int(total), "binarized_weights": int(weights),
            "bits_per_weight": total / weights if weights else float("nan"), "shared_codebook_bits": codebook}


def choose_bits_for_budget(histograms: dict[str, torch.Tensor], budget: float, other_binary_weights: int = 0) -> dict[str, int]:
    """n per layer so that bits per binarized weight <= budget, greedily changing the fewest
    signs: start at n = 9 everywhere and repeatedly take the move (a layer to a cheaper n) that
    adds the fewest uncovered kernels, K_l (1 - C_l(2^n)), per bit saved."""
    kernels = {k: int(h.sum().item()) for k, h in histograms.items()}
    weights = 9 * sum(kernels.values()) + other_binary_weights
    cost = {k: {n: layer_bits(kernels[k], n) for n in range(MIN_BITS, MAX_BITS + 1)} for k in kernels}
    floor = (sum(min(c.values()) for c in cost.values()) + other_binary_weights) / max(weights, 1)
    if not budget > 0 or budget + 1e-12 < floor:
        raise CodebookError(f"qbn.budget={budget}: the smallest codebooks allow at least {floor:.4f} bits per "
                            f"binarized weight for this model; ask for a budget >= {floor:.4f} (1.0 = the BWN)")
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
