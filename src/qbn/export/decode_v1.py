"""Format version 1's sections of a binary layer: a QBN codebook as the layer's own uint9
section, and entropy-coded symbols as the layer's own model table and payload (docs/format.md).
Version-2 files code these together (decode_v2); version-1 files still load bit for bit."""

from __future__ import annotations

import torch

from ..kernels import NUM_IDS
from . import entropy
from .container import PackedFileError, read_raw, read_uint


def codebook(entry: dict, data: memoryview, what: str) -> torch.Tensor:
    """A QBN layer's codebook ids, stored as a uint9 section."""
    book = read_uint(entry.get("codebook"), data, f"{what} codebook", 9)
    if book.dim() != 1 or not 1 <= book.numel() <= 512:
        raise PackedFileError(f"bad header: {what} codebook must hold 1 to 512 kernel ids")
    return book


def entropy_symbols(entry: dict, data: memoryview, what: str, book: torch.Tensor | None,
                    shape: list[int]) -> torch.Tensor:
    """A layer's own table-coded symbols (kernel ids, or codebook positions for QBN), one per kernel."""
    spec = entry.get("entropy")
    if not isinstance(spec, dict):
        raise PackedFileError(f"bad header: {what} has no entropy section")
    alphabet = NUM_IDS if book is None else book.numel()
    if spec.get("alphabet") != alphabet:
        raise PackedFileError(f"bad header: {what} entropy alphabet {spec.get('alphabet')!r}, expected {alphabet}")
    table = read_raw(spec.get("table"), data, f"{what} entropy table", "uint8").tobytes()
    words = read_raw(spec.get("payload"), data, f"{what} entropy payload", "uint32")
    return entropy.decode(table, words, alphabet, shape[0] * shape[1]).view(shape[0], shape[1])
