"""Adaptive entropy coding of symbol streams with constriction's rANS coder (format version 2).

A stream is a sequence of symbols < alphabet (a model's 3x3 kernel ids, or one QBN layer's
codebook positions). It is coded with an *adaptive* model that needs no table in the file:
symbol t is coded with probabilities proportional to `den * c_s + num` where c_s counts symbol s
among the symbols before it (a Dirichlet(num/den) prior: the Krichevsky-Trofimov estimator for
1/2). Its total cost is -log2 of the sequence's Dirichlet-mixture probability, which depends on
the final counts only: N H + about (m - 1)/2 log2 N bits for m used symbols, with no table.

Counts are updated after each *chunk* (sizes by `chunk_bounds`: 16 symbols, then 1/32 of those
coded so far, at most 4096), so the decoder builds one model per chunk and decodes it in one
call; this costs a few bits per stream against per-symbol updates. Encoder and decoder compute
the same float64 probabilities from the same integers, constriction quantises them
deterministically (Categorical, perfect=False), so decoding is exact.
"""

from __future__ import annotations

import math

import numpy as np

MIN_CHUNK, MAX_CHUNK, CHUNK_SHIFT = 16, 4096, 5
# candidate priors num/den: the writer takes the cheapest for each stream (closed-form cost)
PRIORS = ((1, 64), (1, 32), (1, 16), (1, 8), (1, 4), (1, 2), (1, 1))


def chunk_bounds(total: int) -> list[int]:
    """Chunk starts and the end: [0, 16, 32, ..., total]."""
    bounds, t = [0], 0
    while t < total:
        t = min(total, t + min(MAX_CHUNK, max(MIN_CHUNK, t >> CHUNK_SHIFT)))
        bounds.append(t)
    return bounds


def _probabilities(counts: np.ndarray, prior: tuple[int, int]) -> np.ndarray:
    num, den = prior
    w = counts.astype(np.int64) * den + num
    return w.astype(np.float64) / float(w.sum())


def _model(counts: np.ndarray, prior: tuple[int, int]):
    import constriction

    return constriction.stream.model.Categorical(_probabilities(counts, prior), perfect=False)


def dirichlet_bits(counts: np.ndarray, prior: tuple[int, int]) -> float:
    """-log2 P(sequence) under the per-symbol adaptive Dirichlet(a = num/den) model: it depends
    only on the final counts, log2 G(N + m a) - log2 G(m a) - sum_s [log2 G(c_s + a) - log2 G(a)]."""
    a = prior[0] / prior[1]
    m, n = len(counts), int(counts.sum())
    nats = (math.lgamma(n + m * a) - math.lgamma(m * a)
            - sum(math.lgamma(int(c) + a) - math.lgamma(a) for c in counts if c))
    return nats / math.log(2)


def best_prior(counts: np.ndarray) -> tuple[int, int]:
    """The candidate prior with the smallest closed-form cost for these counts."""
    return min(PRIORS, key=lambda p: dirichlet_bits(counts, p))


def encode(coder, symbols: np.ndarray, alphabet: int, prior: tuple[int, int]) -> None:
    """Push one stream onto an AnsCoder (a stack: push streams last first, decode first first)."""
    s = np.ascontiguousarray(symbols, dtype=np.int64)
    bounds = chunk_bounds(len(s))
    counts = np.zeros((len(bounds), alphabet), dtype=np.int64)  # counts before each chunk
    for i in range(1, len(bounds)):
        counts[i] = counts[i - 1] + np.bincount(s[bounds[i - 1]:bounds[i]], minlength=alphabet)
    for i in range(len(bounds) - 2, -1, -1):
        coder.encode_reverse(s[bounds[i]:bounds[i + 1]].astype(np.int32), _model(counts[i], prior))


def decode(coder, total: int, alphabet: int, prior: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Pop one stream of `total` symbols; also its information content (bits) under the model."""
    out = np.empty(total, dtype=np.int64)
    counts = np.zeros(alphabet, dtype=np.int64)
    bounds = chunk_bounds(total)
    info = 0.0
    for i in range(len(bounds) - 1):
        p = _probabilities(counts, prior)
        chunk = np.asarray(coder.decode(_model(counts, prior), bounds[i + 1] - bounds[i]), dtype=np.int64)
        out[bounds[i]:bounds[i + 1]] = chunk
        counts += np.bincount(chunk, minlength=alphabet)
        info -= float(np.log2(p[chunk]).sum())
    return out, info
