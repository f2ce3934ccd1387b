"""3x3 binary kernels as ids, and the mapping of a layer's kernels onto a codebook (QBN).

Kernel id = sum_j [B_j > 0] 2^j over the nine entries of a 3x3 kernel (j row-major), so 512 ids.
A QBN layer keeps a codebook K of 2^n ids and computes with c* = argmax_{c in K} <w, c> for each
latent kernel w (ties to the more frequent codeword), with the sign STE's gradient to w. This is
what a binary layer needs in forward; counting kernels and choosing codebooks is qbn.kernels.
"""

from __future__ import annotations

import torch

from .ste import sign_ste

NUM_IDS = 512
_POWERS = 2 ** torch.arange(9)          # 2^j for j = 0..8, j row-major in the 3x3 kernel
# Scores within this share of the row's |w| sum count as a tie (float rounding of equal sums).
TIE_TOLERANCE = 1e-5


def is_kernel_tensor(t: torch.Tensor) -> bool:
    """True for an O x I x 3 x 3 weight or sign tensor (the only kind that has kernel ids)."""
    return t.dim() == 4 and tuple(t.shape[-2:]) == (3, 3)


def kernel_ids(signs: torch.Tensor) -> torch.Tensor:
    """Kernel id = sum_j [B_j > 0] 2^j (j row-major) of a bool (True = +1) or +-1 tensor
    O x I x 3 x 3, as a LongTensor O x I."""
    if not is_kernel_tensor(signs):
        raise ValueError(f"kernel ids need an O x I x 3 x 3 tensor, got shape {tuple(signs.shape)}")
    bits = signs if signs.dtype == torch.bool else signs > 0
    flat = bits.reshape(*bits.shape[:2], 9).float()
    # one small matmul; exact: the sums are integers below 2^24
    return (flat @ _POWERS.to(device=flat.device, dtype=torch.float32)).long()


def ids_to_kernels(ids: torch.Tensor) -> torch.Tensor:
    """The +-1 float kernels of kernel ids: shape (..., 3, 3)."""
    ids = torch.as_tensor(ids).long()
    bits = (ids.unsqueeze(-1) >> torch.arange(9, device=ids.device)) & 1
    return (bits.float() * 2 - 1).reshape(*ids.shape, 3, 3)


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
    if torch.compiler.is_compiling():
        return _nearest_codeword(w, book, tol).view(weight.shape[:2])
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


def _nearest_codeword(w: torch.Tensor, book: torch.Tensor, tol: torch.Tensor) -> torch.Tensor:
    """map_to_codebook under torch.compile: every kernel scored against every codeword (N x 2^n), with no
    data-dependent shape or branch (those break the graph). The same index: a kernel whose own sign
    pattern is a codeword, with no |w_j| small enough for a tie, scores every other codeword below
    best - tol, so the first codeword within tol of the best is its own."""
    scores = w @ ids_to_kernels(book).reshape(-1, 9).to(w.dtype).T
    near = scores >= scores.amax(dim=1, keepdim=True) - tol.unsqueeze(1)
    return near.to(torch.uint8).argmax(dim=1)


def quantized_kernels(weight: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """The +-1 codeword c* of every kernel, shaped like the weight (no gradient)."""
    index = map_to_codebook(weight, codebook)
    return ids_to_kernels(codebook.to(index.device)[index]).to(weight.dtype)


def quantize_ste(weight: torch.Tensor, codebook: torch.Tensor, ste: str = "clipped") -> torch.Tensor:
    """Forward: the codeword c* of each kernel; backward: the sign STE's gradient to the latent
    weight (unchanged, or only where |w| <= 1 when clipped)."""
    b = sign_ste(weight, ste)
    return b + (quantized_kernels(weight, codebook) - b).detach()


def pattern_ids(patterns: torch.Tensor) -> torch.Tensor:
    """Kernel ids of sign(p) for learned patterns of shape K x 3 x 3 (sign(0) = +1): LongTensor K."""
    return kernel_ids(patterns.detach().unsqueeze(0) >= 0).view(-1)


def learned_ste(weight: torch.Tensor, patterns: torch.Tensor, ste: str = "clipped") -> torch.Tensor:
    """A learned codebook (SNN-style): forward, each kernel w takes sign(p*) of the pattern p*
    maximising <w, sign(p)> (map_to_codebook over the patterns' sign ids: the same mapping, ties to
    the earlier pattern, as a QBN codebook of those ids, so freezing changes nothing); backward, the
    sign STE's gradient to w, and to each pattern the sum of its kernels' gradients through the
    pattern's own sign STE (clipped: only where |p| <= 1)."""
    index = map_to_codebook(weight, pattern_ids(patterns))
    b = sign_ste(weight, ste)
    return sign_ste(patterns, ste)[index] + (b - b.detach())   # b - b.detach() is exactly 0 forward
