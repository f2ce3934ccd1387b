"""The coded payload of a version-2 file: one rANS stack (constriction) holding the model's
codebooks (codebook_coder) and then its entropy-coded symbol streams (adaptive), as uint32 words.
Decoding checks that every codebook has its declared size and that the words are used up."""

from __future__ import annotations

import numpy as np

from . import adaptive, codebook_coder
from .container import PackedFileError


def encode(books: list[np.ndarray], streams: list[tuple[np.ndarray, int, tuple[int, int]]]) -> np.ndarray:
    """Words for sorted-id codebooks and streams (symbols, alphabet, prior); decoded in that order."""
    import constriction

    coder = constriction.stream.stack.AnsCoder()
    for symbols, alphabet, prior in reversed(streams):
        adaptive.encode(coder, symbols, alphabet, prior)
    if books:
        codebook_coder.encode(coder, books)
    return np.asarray(coder.get_compressed(), dtype=np.uint32)


def decode(words: np.ndarray, sizes: list[int], streams: list[tuple[int, int, tuple[int, int]]]) -> dict:
    """{'books': sorted ids per codebook, 'book_bits', 'symbols': per stream, 'stream_bits'} for
    codebook sizes and streams (total symbols, alphabet, prior); information contents in bits."""
    import constriction

    try:
        coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))
        books, book_bits = codebook_coder.decode(coder, sizes) if sizes else ([], [])
        for j, (book, k) in enumerate(zip(books, sizes, strict=True)):
            if len(book) != k:
                raise PackedFileError(f"coded payload is corrupt: codebook {j} decodes to {len(book)} kernel ids, "
                                      f"the header says {k}")
        decoded = [adaptive.decode(coder, total, alphabet, prior) for total, alphabet, prior in streams]
        left = not coder.is_empty()
    except (ValueError, RuntimeError, OverflowError, AssertionError) as e:
        raise PackedFileError(f"coded payload is corrupt ({type(e).__name__}: {str(e)[:120]})") from None
    if left:
        raise PackedFileError("coded payload is corrupt: words are left after decoding every codebook and stream")
    return {"books": books, "book_bits": book_bits,
            "symbols": [s for s, _ in decoded], "stream_bits": [b for _, b in decoded]}
