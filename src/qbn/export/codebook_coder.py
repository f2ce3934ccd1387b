"""Compact QBN codebooks (format version 2): a model's codebooks coded together as sets.

A codebook of K distinct kernel ids is a subset of the 512 ids; the loader needs the set only
(indices are stored as positions in the sorted set), so its order costs nothing. One codebook
alone is worth log2 C(512, K) bits (169 for K = 32 instead of 9 K = 288); the codebooks of one
model overlap (layers favour the same kernels) and are nearly closed under negation, so they are
coded together, as membership bits x_j(id) for id = 0..511, with constriction's rANS coder and
an adaptive Bernoulli model per *context*:

- how many earlier codebooks hold the id (0, 1, 2, 3 or more),
- whether the previous codebook holds it,
- for ids 256..511 (coded after 0..255), whether the same codebook holds its negation 511 - id.

P(x = 1 | context) = (ones + 2 r) / (events + 2) over the earlier events of that context,
with r the codebook's own rate: K / 512 for ids 0..255, then (K - members among 0..255) / 256
(K is in the header, and the decoded set must have K ids).
Counts are updated after each half (ids 0..255, then 256..511) of each codebook, so each half
is one vectorised call. Encoder and decoder compute the same float64 probabilities from the
same integers; constriction quantises them deterministically (Bernoulli, perfect=False).
"""

from __future__ import annotations

import numpy as np

from ..kernels.histograms import NUM_IDS

HALF = NUM_IDS // 2
_CONTEXTS = 4 * 2 * 3  # earlier holders (0..3+) x in previous (0/1) x negation (unknown/held/not held)


def _contexts(holders: np.ndarray, previous: np.ndarray, negation: np.ndarray | None, ids: slice) -> np.ndarray:
    neg = np.zeros(HALF, dtype=np.int64) if negation is None else 1 + (~negation[::-1]).astype(np.int64)
    return (np.minimum(holders[ids], 3) * 2 + previous[ids]) * 3 + neg


def _probabilities(ctx: np.ndarray, ones: np.ndarray, events: np.ndarray, rate: float) -> np.ndarray:
    return (ones[ctx] + 2.0 * rate) / (events[ctx] + 2.0)


def _walk(books: list[np.ndarray | None], sizes: list[int], decide):
    """Visit every half-codebook in coding order with its contexts and probabilities; `decide`
    returns its membership bits (the encoder reads them, the decoder decodes them). Returns the
    sorted ids and the information content (bits) of each codebook."""
    holders = np.zeros(NUM_IDS, dtype=np.int64)
    previous = np.zeros(NUM_IDS, dtype=np.int64)
    ones = np.zeros(_CONTEXTS, dtype=np.int64)
    events = np.zeros(_CONTEXTS, dtype=np.int64)
    out, info = [], []
    for j, k in enumerate(sizes):
        member = np.zeros(NUM_IDS, dtype=bool)
        bits_info = 0.0
        for half in (slice(0, HALF), slice(HALF, NUM_IDS)):
            ctx = _contexts(holders, previous, member[:HALF] if half.start else None, half)
            rate = k / NUM_IDS if half.start == 0 else min(max(k - int(member[:HALF].sum()), 0), HALF) / HALF
            p = _probabilities(ctx, ones, events, rate)
            bits = decide(j, half, p)
            member[half] = bits
            bits_info += -float(np.log2(np.where(bits, p, 1 - p)).sum())
            np.add.at(ones, ctx, bits.astype(np.int64))
            np.add.at(events, ctx, 1)
        holders += member
        previous = member.astype(np.int64)
        out.append(np.flatnonzero(member))
        info.append(bits_info)
    return out, info


def _bernoulli():
    import constriction

    return constriction.stream.model.Bernoulli(perfect=False)


def encode(coder, books: list[np.ndarray]) -> None:
    """Push the sorted-id codebooks onto an AnsCoder (decode them first with `decode`)."""
    pushes = []

    def read(j, half, p):
        member = np.zeros(NUM_IDS, dtype=bool)
        member[books[j]] = True
        pushes.append((member[half].astype(np.int32), p))
        return member[half]

    _walk(books, [len(b) for b in books], read)
    for bits, p in reversed(pushes):
        coder.encode_reverse(bits, _bernoulli(), np.ascontiguousarray(p))


def decode(coder, sizes: list[int]) -> tuple[list[np.ndarray], list[float]]:
    """The sorted ids of each codebook (each must hold exactly its size: checked by the caller)
    and its information content in bits under the model."""
    def pop(j, half, p):
        return np.asarray(coder.decode(_bernoulli(), np.ascontiguousarray(p)), dtype=bool)

    return _walk([None] * len(sizes), sizes, pop)
