"""Format version 1's per-layer entropy coding (decoding only: version-2 files use
qbn.export.adaptive and codebook_coder; version-1 files still load bit for bit).

Symbols are a layer's kernel ids (0..511, BWN) or codebook indices (0..2^n - 1, QBN). The
model is the layer's own empirical histogram, stored in the file as a *model table*:
a presence bitmap over the alphabet (alphabet / 8 bytes) followed by the count of each present
symbol in Elias-gamma code (2 floor(log2 c) + 1 bits), so a rare symbol costs 1-3 bits and the
whole table stays small against the payload (docs/format.md). The coder sees only the m
present symbols (alphabet {0..m-1}), so no probability mass is spent on absent ones.
Encoder and decoder build the identical float64 probability vector from the integer counts and
constriction's deterministic quantisation (perfect=False), so decoding is exact.
"""

from __future__ import annotations

import numpy as np
import torch

from ..binary.packing import unpack_bits
from .container import PackedFileError

MAX_GAMMA_BITS = 31


def _categorical(counts: np.ndarray):
    import constriction

    p = counts.astype(np.float64) / float(counts.sum())
    return constriction.stream.model.Categorical(p, perfect=False)


def decode_table(table: bytes, alphabet: int, total: int) -> np.ndarray:
    """Counts per symbol from a model table; checks they are well formed and sum to `total`."""
    nmap = (alphabet + 7) // 8
    if not nmap <= len(table) <= nmap + alphabet * 8:  # a count < 2^31 takes at most 63 gamma bits
        raise PackedFileError(f"entropy model table has {len(table)} bytes: expected {nmap} to {nmap + alphabet * 8}")
    present = unpack_bits(torch.frombuffer(bytearray(table[:nmap]), dtype=torch.uint8), alphabet).numpy()
    rest = table[nmap:]
    bits = unpack_bits(torch.frombuffer(bytearray(rest), dtype=torch.uint8), len(rest) * 8).tolist() if rest else []
    counts = np.zeros(alphabet, dtype=np.int64)
    pos = 0
    for sym in np.flatnonzero(present).tolist():
        zeros = 0
        while pos < len(bits) and bits[pos] == 0 and zeros <= MAX_GAMMA_BITS:
            zeros += 1
            pos += 1
        if zeros > MAX_GAMMA_BITS or pos + zeros + 1 > len(bits):
            raise PackedFileError("entropy model table is corrupt: a count runs past the table")
        value = 0
        for b in bits[pos:pos + zeros + 1]:
            value = (value << 1) | b
        pos += zeros + 1
        counts[sym] = value
    if int(counts.sum()) != total:
        raise PackedFileError(f"entropy model table is corrupt: counts sum to {int(counts.sum())}, "
                              f"the layer has {total} kernels")
    return counts


def decode(table: bytes, words: np.ndarray, alphabet: int, total: int) -> torch.Tensor:
    """The flat int64 symbols of a version-1 layer; the decoded histogram must equal the table's."""
    import constriction

    counts = decode_table(table, alphabet, total)
    present = np.flatnonzero(counts)
    if total == 0:
        return torch.zeros(0, dtype=torch.int64)
    if len(present) == 1:
        out = np.full(total, present[0], dtype=np.int64)
    else:
        try:
            coder = constriction.stream.stack.AnsCoder(words.astype(np.uint32))
            ranks = coder.decode(_categorical(counts[present]), total)
        except (ValueError, RuntimeError, OverflowError) as e:
            raise PackedFileError(f"entropy-coded payload is corrupt ({str(e)[:120]})") from None
        out = present[np.asarray(ranks, dtype=np.int64)]
    if not np.array_equal(np.bincount(out, minlength=alphabet), counts):
        raise PackedFileError("entropy-coded payload is corrupt: decoded kernels disagree with the layer's model table")
    return torch.from_numpy(out)
