"""What a better coder could still gain on a QBN model's indices and codebooks (not a test).

For a trained BWN quantized to n bits per 3x3 kernel (per-layer codebooks of its 2^n most
frequent kernels), prints the cost in bits per binarized weight of
  - the indices: format version 2's per-layer adaptive stream (closed form), the empirical
    per-layer entropy (the floor for any per-layer zero-order model), models that share counts
    across layers (the model-wide codeword frequencies restricted to each codebook, at several
    weights), and a model over sign-symmetric classes plus one adaptive sign bit per layer;
  - the codebooks: format version 2's cross-layer set coder, and the same with one more context
    (the kernel's Hamming weight min(popcount, 9 - popcount), or its count of unequal 4-neighbour
    signs), each as the information content under the adaptive model.

    python experiments/bench/qbn_coding_limits.py RUN_DIR_OR_CKPT [--bits 5]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from qbn.checkpoint import model_from_checkpoint
from qbn.export import adaptive
from qbn.export import codebook_coder as cc
from qbn.kernels.quantize import quantizable_layers, quantize
from qbn.kernels.read_signs import backbone

IDS = np.arange(512)


def layer_codewords(source, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(sorted codebook ids, each kernel's codeword id) per 3x3 layer, quantized as qbn does."""
    module, _ = model_from_checkpoint(source)
    layers = quantizable_layers(backbone(module))
    quantize(layers, {k: n for k in layers})
    out = []
    for layer in layers.values():
        book = layer.codebook.cpu().numpy().astype(np.int64)
        out.append((np.sort(book), book[layer.codebook_indices().cpu().long().numpy().reshape(-1)]))
    return out


def entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(counts[counts > 0] * np.log2(p)).sum())


def kt_bits(k: int, n: int) -> float:
    """-log2 of a binary sequence's probability (k ones in n) under the KT estimator."""
    return (math.lgamma(n + 1) + math.log(math.pi) - math.lgamma(k + 0.5) - math.lgamma(n - k + 0.5)) / math.log(2)


def index_costs(layers) -> dict[str, float]:
    costs = {"v2 per-layer adaptive": 0.0, "empirical per-layer entropy (floor)": 0.0,
             "sign-symmetric classes + sign bit": 0.0}
    for book, ids in layers:
        c = np.bincount(np.searchsorted(book, ids), minlength=len(book))
        costs["v2 per-layer adaptive"] += adaptive.dirichlet_bits(c, adaptive.best_prior(c))
        costs["empirical per-layer entropy (floor)"] += entropy_bits(c)
        cls, inv = np.unique(np.minimum(book, 511 - book), return_inverse=True)
        pair = np.bincount(inv, minlength=len(cls)) == 2
        of = inv[np.searchsorted(book, ids)]
        cc_ = np.bincount(of, minlength=len(cls))
        paired = pair[of]
        costs["sign-symmetric classes + sign bit"] += (adaptive.dirichlet_bits(cc_, adaptive.best_prior(cc_))
                                                       + kt_bits(int((ids[paired] >= 256).sum()), int(paired.sum())))
    for weight in (1, 4, 16, 64):
        seen, total = np.zeros(512), 0.0
        for book, ids in layers:
            own = np.zeros(512)
            for s in ids:  # sequential: each kernel coded with the counts before it
                g = seen[book]
                w = own[book] + weight * len(book) * g / max(g.sum(), 1) + 0.5
                total -= math.log2(w[np.searchsorted(book, s)] / w.sum())
                own[s] += 1
            seen += own
        costs[f"shared across layers, weight {weight}"] = total
    return costs


def codebook_costs(books: list[np.ndarray]) -> dict[str, float]:
    bits = (IDS[:, None] >> np.arange(9)) & 1
    grid = bits.reshape(512, 3, 3)
    unequal = (grid[:, :, 1:] != grid[:, :, :-1]).sum((1, 2)) + (grid[:, 1:, :] != grid[:, :-1, :]).sum((1, 2))
    extra = {"v2 cross-layer set coder": np.zeros(512, dtype=np.int64),
             "+ Hamming weight context": np.minimum(bits.sum(1), 9 - bits.sum(1)),
             "+ unequal-neighbour context": np.minimum(unequal // 2, 5)}
    base_contexts, base_count = cc._contexts, cc._CONTEXTS
    out = {}
    try:
        for name, feature in extra.items():
            k = int(feature.max()) + 1
            cc._CONTEXTS = base_count * k
            cc._contexts = lambda h, p, neg, sl, f=feature, k=k: base_contexts(h, p, neg, sl) * k + f[sl]
            _, info = cc._walk(books, [len(b) for b in books], lambda j, half, p: np.isin(IDS[half], books[j]))
            out[name] = sum(info)
    finally:
        cc._contexts, cc._CONTEXTS = base_contexts, base_count
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a run directory or checkpoint of a trained BWN")
    parser.add_argument("--bits", type=int, default=5)
    args = parser.parse_args()
    layers = layer_codewords(args.source, args.bits)
    weights = 9 * sum(len(ids) for _, ids in layers)
    books = [book for book, _ in layers]
    print(f"{args.source}: {len(layers)} layers, QBN n = {args.bits}, {weights} binarized weights; "
          f"{len(set(np.concatenate(books)))} distinct codeword ids; target line 5/9 = {5 / 9:.4f}")
    print("indices, bits per binarized weight:")
    for name, bits in index_costs(layers).items():
        print(f"  {name:40s} {bits / weights:.4f}")
    one = math.log2(math.comb(512, 2 ** args.bits))
    print(f"codebooks (one subset of 512 alone: {one:.0f} bits), bits per codebook and per binarized weight:")
    for name, bits in codebook_costs(books).items():
        print(f"  {name:40s} {bits / len(books):6.1f}  {bits / weights:.4f}")


if __name__ == "__main__":
    main()
