"""A binary layer's header entry and data sections back to its signs (+-1), alpha and bias, in
either format version: what both share is here, each version's own sections are read by
decode_v1 (per-layer sections) or decode_v2 (the coded payload)."""

from __future__ import annotations

from typing import Any

import torch

from ..kernels import NUM_IDS, ids_to_kernels, kernel_ids
from . import decode_v1, decode_v2
from .container import PackedFileError, check_shape, index_bits, read_float, read_uint


def decode_layer(name: str, entry: Any, data: memoryview, expected_shape: list[int],
                 coded: dict | None = None) -> dict[str, torch.Tensor]:
    """A binary layer's signs (+-1 float, the weight's shape), alpha and bias, validated, and a
    3x3 layer's stored symbols with their alphabet.
    `coded`: the decoded payload of a version-2 file (None: version 1, per-layer sections)."""
    what = f"layer {name}"
    if not isinstance(entry, dict):
        raise PackedFileError(f"bad header: {what} is not an object")
    shape = check_shape(entry.get("shape"), what)
    if shape != expected_shape:
        raise PackedFileError(f"shape disagrees with the model: {what} is {shape} in the header, "
                              f"{expected_shape} in the model")
    storage = entry.get("storage")
    is3x3 = len(shape) == 4 and shape[2:] == [3, 3]
    if coded is not None:
        decode_v2.check_storage(name, what, storage, coded)
    out: dict[str, torch.Tensor] = {}
    if storage == "signs":
        bits = read_uint(entry.get("signs"), data, f"{what} signs", 1)
        if list(bits.shape) != shape:
            raise PackedFileError(f"shape disagrees with the header: {what} signs are {list(bits.shape)}, "
                                  f"layer is {shape}")
        out["b"] = bits.float() * 2 - 1
        if is3x3:
            out["symbols"], out["alphabet"] = kernel_ids(out["b"]), NUM_IDS
    elif storage in ("codebook", "entropy") and is3x3:
        book = _codebook(entry, data, what, coded)
        if storage == "codebook":
            if book is None:
                raise PackedFileError(f"bad header: {what} stores codebook indices but no codebook")
            idx = read_uint(entry.get("indices"), data, f"{what} indices", index_bits(book.numel()))
            if list(idx.shape) != shape[:2]:
                raise PackedFileError(f"shape disagrees with the header: {what} indices are {list(idx.shape)}, "
                                      f"expected {shape[:2]}")
        elif coded is None:
            idx = decode_v1.entropy_symbols(entry, data, what, book, shape)
        else:
            idx = decode_v2.layer_symbols(name, what, coded, book, shape)
        if book is None:
            ids = idx
        else:
            if idx.numel() and int(idx.max()) >= book.numel():
                raise PackedFileError(f"index >= codebook size: {what} has index {int(idx.max())}, "
                                      f"codebook holds {book.numel()}")
            ids = book[idx]
        out["b"] = ids_to_kernels(ids)
        out["symbols"], out["alphabet"] = idx, NUM_IDS if book is None else book.numel()
    else:
        raise PackedFileError(f"bad header: {what} has storage {str(storage)[:40]!r} (signs, codebook or entropy; "
                              "codebook and entropy only for 3x3 convs)")
    for key in ("alpha", "bias"):  # one value per output channel each
        if key in entry:
            values = read_float(entry[key], data, f"{what} {key}")
            if list(values.shape) != [shape[0]]:
                raise PackedFileError(f"shape disagrees with the header: {what} {key} is {list(values.shape)}, "
                                      f"expected [{shape[0]}]")
            out[key] = values
    return out


def _codebook(entry: dict, data: memoryview, what: str, coded: dict | None) -> torch.Tensor | None:
    """A QBN layer's codebook ids (None for a BWN layer), from the section of its version."""
    if "codebook" not in entry:
        return None
    if coded is not None:
        return decode_v2.codebook(entry, coded, what)
    return decode_v1.codebook(entry, data, what)


def effective_weight(parts: dict[str, torch.Tensor]) -> torch.Tensor:
    """alpha * B exactly as BinaryConv2d computes it (alpha per output channel, fp32)."""
    b = parts["b"]
    if "alpha" not in parts:
        return b
    return parts["alpha"].view(-1, *([1] * (b.dim() - 1))) * b
