"""Format version 2's coded payload: every codebook, then every entropy-coded layer's symbols,
in one adaptive rANS stack (docs/format.md); a layer's header entry names its codebook by number
and its symbols by the stream that holds them."""

from __future__ import annotations

from typing import Any

import torch

from ..kernels import NUM_IDS
from . import coding
from .container import PackedFileError, check_int, read_raw

MAX_CODED_ITEMS = 4096  # codebooks or streams of one file (a model has far fewer binary layers)


def decode_coded(header: dict, data: memoryview, kernels: dict[str, int]) -> dict:
    """Decode the 'coded' payload (codebooks, then streams) after checking its description;
    `kernels`: each binary 3x3 layer's kernel count (from the model)."""
    spec = header.get("coded")
    if (not isinstance(spec, dict) or not isinstance(spec.get("codebooks"), list)
            or not isinstance(spec.get("streams"), list)):
        raise PackedFileError("bad header: missing or malformed 'coded' (payload, codebooks, streams)")
    sizes = [check_int(k, "a codebook size", 1, NUM_IDS) for k in spec["codebooks"]]
    if len(sizes) > MAX_CODED_ITEMS or len(spec["streams"]) > MAX_CODED_ITEMS:
        raise PackedFileError(f"bad header: more than {MAX_CODED_ITEMS} codebooks or streams")
    streams, seen = [], set()
    for i, st in enumerate(spec["streams"]):
        if not isinstance(st, dict) or not isinstance(st.get("layers"), list) or not st["layers"]:
            raise PackedFileError(f"bad header: coded stream {i} must list its layers")
        for name in st["layers"]:
            if name not in kernels or name in seen:
                raise PackedFileError(f"bad header: coded stream {i} lists {str(name)[:60]!r}, not a 3x3 binary layer "
                                      "of the model (or listed twice)")
            seen.add(name)
        alphabet = check_int(st.get("alphabet"), f"alphabet of coded stream {i}", 1, NUM_IDS)
        prior = st.get("prior")
        if not isinstance(prior, list) or len(prior) != 2:
            raise PackedFileError(f"bad header: prior of coded stream {i} must be [numerator, denominator]")
        prior = tuple(check_int(v, f"prior of coded stream {i}", 1, 1 << 16) for v in prior)
        streams.append((st["layers"], alphabet, prior))
    words = read_raw(spec.get("payload"), data, "coded payload", "uint32")
    out = coding.decode(words, sizes, [(sum(kernels[n] for n in names), a, p) for names, a, p in streams])
    out["layer_symbols"], out["stream_layers"] = {}, [names for names, _, _ in streams]
    for (names, alphabet, _), symbols in zip(streams, out["symbols"], strict=True):
        start = 0
        for name in names:
            out["layer_symbols"][name] = (torch.from_numpy(symbols[start:start + kernels[name]]), alphabet)
            start += kernels[name]
    return out


def check_storage(name: str, what: str, storage: Any, coded: dict) -> None:
    """A layer whose symbols are in a coded stream is stored as entropy, nothing else."""
    if name in coded["layer_symbols"] and storage != "entropy":
        raise PackedFileError(f"bad header: {what} is in a coded stream but has storage {str(storage)[:40]!r}")


def codebook(entry: dict, coded: dict, what: str) -> torch.Tensor:
    """A QBN layer's codebook ids (sorted), named by the number of a decoded codebook."""
    j = entry["codebook"]
    if type(j) is not int or not 0 <= j < len(coded["books"]):
        raise PackedFileError(f"bad header: {what} codebook must be the number of one of the file's "
                              f"{len(coded['books'])} codebooks, got {str(j)[:40]}")
    return torch.from_numpy(coded["books"][j])


def layer_symbols(name: str, what: str, coded: dict, book: torch.Tensor | None, shape: list[int]) -> torch.Tensor:
    """A layer's symbols (kernel ids, or codebook positions for QBN) from the stream that holds them."""
    if name not in coded["layer_symbols"]:
        raise PackedFileError(f"bad header: {what} has storage entropy but is in no coded stream")
    symbols, alphabet = coded["layer_symbols"][name]
    if alphabet != (NUM_IDS if book is None else book.numel()):
        raise PackedFileError(f"bad header: {what} is coded over {alphabet} symbols, its "
                              + ("kernel ids need 512" if book is None else f"codebook holds {book.numel()}"))
    return symbols.view(shape[0], shape[1])
