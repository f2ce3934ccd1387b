"""The byte container of a packed model file: prefix, JSON header, data sections (docs/format.md).

    offset 0   8 bytes   magic b"\\x89QBN\\r\\n\\x1a\\n"
    offset 8   u32 LE    format version (2; version 1 files still load)
    offset 12  u32 LE    header length H in bytes
    offset 16  32 bytes  SHA-256 of header bytes + data bytes
    offset 48  H bytes   header: UTF-8 JSON, zlib-compressed (RFC 1950), at most 4 MiB either way
    48 + H     ...       data: raw sections, at offsets relative to the start of the data

Nothing here trusts the file: every length, offset, shape and dtype is checked before a byte
is interpreted, and every failure is a PackedFileError naming the problem.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from typing import Any

import numpy as np
import torch

from ..binary.packing import pack_bits, unpack_bits
from ..errors import QbnError

MAGIC = b"\x89QBN\r\n\x1a\n"
VERSION = 2  # written; READABLE versions load
READABLE = (1, 2)
PREFIX = struct.Struct("<8sII32s")  # magic, version, header length, sha256
PREFIX_BYTES = PREFIX.size  # 48
MAX_HEADER_BYTES = 4 << 20  # a resnet50 header is ~100 kB; anything far larger is not ours
MAX_FILE_BYTES = 8 << 30
MAX_NUMEL = 1 << 28  # per tensor (1 GiB of fp32)
MAX_DIM = 1 << 24

RAW_DTYPES = {"float32": ("<f4", 4, torch.float32), "float16": ("<f2", 2, torch.float16),
              "uint32": ("<u4", 4, None), "uint8": ("u1", 1, None)}


class PackedFileError(QbnError):
    """A packed model file that is not valid: the message names the problem."""


def _bits_of(dtype: str) -> int | None:
    """n for the packed dtypes 'bits' (n = 1) and 'uint<n>' with 2 <= n <= 16."""
    if dtype == "bits":
        return 1
    if dtype.startswith("uint") and dtype[4:].isdigit() and dtype not in RAW_DTYPES:
        n = int(dtype[4:])
        return n if 2 <= n <= 16 else None
    return None


def index_bits(codebook_size: int) -> int:
    """Bits per codebook index: ceil(log2 K), at least 1 (writer, loader and sizes agree on it)."""
    return max(1, (codebook_size - 1).bit_length())


def expected_nbytes(dtype: str, numel: int) -> int:
    """Bytes a section of `numel` elements of `dtype` occupies."""
    if dtype in RAW_DTYPES:
        return numel * RAW_DTYPES[dtype][1]
    n = _bits_of(dtype)
    if n is None:
        raise PackedFileError(f"unknown section dtype {dtype!r}")
    return (numel * n + 7) // 8


def pack_uint(values: torch.Tensor, n: int) -> torch.Tensor:
    """Unsigned integers < 2^n packed at n bits each: bit b of element i is bit i*n + b of the
    stream (LSB first), the stream then packed by qbn.binary.pack_bits."""
    v = values.reshape(-1).to(torch.int64)
    if v.numel() and (int(v.min()) < 0 or int(v.max()) >= 1 << n):
        raise ValueError(f"values do not fit in {n} bits")
    bits = ((v.unsqueeze(1) >> torch.arange(n)) & 1).bool()
    return pack_bits(bits)


def unpack_uint(packed: torch.Tensor, n: int, numel: int) -> torch.Tensor:
    """Inverse of pack_uint: `numel` int64 values."""
    if n == 1:
        return unpack_bits(packed, numel).to(torch.int64)
    bits = unpack_bits(packed, numel * n).view(numel, n).to(torch.int64)
    return (bits << torch.arange(n)).sum(dim=1)


class SectionWriter:
    """Appends sections to the data area and returns their header entries."""

    def __init__(self) -> None:
        self.data = bytearray()

    def add(self, dtype: str, shape: list[int] | tuple[int, ...], payload: bytes) -> dict:
        shape = [int(s) for s in shape]
        numel = int(np.prod(shape)) if shape else 1
        if len(payload) != expected_nbytes(dtype, numel):
            raise AssertionError(f"section of {dtype} {shape}: {len(payload)} bytes")
        entry = {"dtype": dtype, "shape": shape, "offset": len(self.data), "nbytes": len(payload)}
        self.data += payload
        return entry

    def tensor(self, t: torch.Tensor, dtype: str) -> dict:
        """A float tensor stored raw in float32 or float16 (little endian)."""
        np_dtype = RAW_DTYPES[dtype][0]
        arr = t.detach().cpu().to(torch.float32).numpy().astype(np_dtype)
        return self.add(dtype, list(t.shape), arr.tobytes())

    def bits(self, b: torch.Tensor) -> dict:
        return self.add("bits", list(b.shape), pack_bits(b.cpu().bool()).numpy().tobytes())

    def uint(self, v: torch.Tensor, n: int) -> dict:
        return self.add("bits" if n == 1 else f"uint{n}", list(v.shape), pack_uint(v.cpu(), n).numpy().tobytes())

    def raw(self, arr: np.ndarray, dtype: str) -> dict:
        arr = np.ascontiguousarray(arr, dtype=RAW_DTYPES[dtype][0])
        return self.add(dtype, [arr.size], arr.tobytes())


def assemble(header: dict, data: bytes, version: int = VERSION) -> bytes:
    """The file's bytes: prefix with checksum, header, data (`version`: for tests that edit old files)."""
    header = dict(header, data_bytes=len(data))
    hbytes = zlib.compress(json.dumps(header, separators=(",", ":"), sort_keys=False).encode(), 9)
    digest = hashlib.sha256(hbytes + data).digest()
    return PREFIX.pack(MAGIC, version, len(hbytes), digest) + hbytes + bytes(data)


def split(buf: bytes, verify_checksum: bool = True) -> tuple[dict, memoryview]:
    """Check prefix, sizes and checksum; return the parsed header and the data area."""
    if len(buf) < PREFIX_BYTES:
        raise PackedFileError(f"truncated file: {len(buf)} bytes, shorter than the {PREFIX_BYTES}-byte prefix")
    magic, version, hlen, digest = PREFIX.unpack_from(buf, 0)
    if magic != MAGIC:
        raise PackedFileError("wrong magic: not a qbn packed model file (expected it to start with \\x89QBN)")
    if version not in READABLE:
        raise PackedFileError(f"unsupported format version {version}: "
                              f"this qbn reads versions {', '.join(map(str, READABLE))}")
    if hlen > MAX_HEADER_BYTES:
        raise PackedFileError(f"header too large: {hlen} bytes (limit {MAX_HEADER_BYTES})")
    if PREFIX_BYTES + hlen > len(buf):
        raise PackedFileError(f"truncated file: the header needs {hlen} bytes, "
                              f"the file has {len(buf) - PREFIX_BYTES} after the prefix")
    body = memoryview(buf)[PREFIX_BYTES:]
    if verify_checksum and hashlib.sha256(body).digest() != digest:
        raise PackedFileError("bad checksum: the file is corrupt or was modified (SHA-256 of header and data differs)")
    try:
        inflate = zlib.decompressobj()
        text = inflate.decompress(bytes(body[:hlen]), MAX_HEADER_BYTES)
        if inflate.unconsumed_tail:
            raise PackedFileError(f"header too large: more than {MAX_HEADER_BYTES} bytes once decompressed")
        if not inflate.eof:
            raise PackedFileError("unreadable header: the compressed header is cut short")
        header = json.loads(text.decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, ValueError, RecursionError) as e:  # ValueError: JSON, huge int literals
        raise PackedFileError(f"unreadable header: not zlib-compressed UTF-8 JSON ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise PackedFileError("unreadable header: the JSON header is not an object")
    data = body[hlen:]
    declared = header.get("data_bytes")
    if type(declared) is not int or declared != len(data):
        raise PackedFileError(f"truncated file or wrong size: header declares {declared!r} data bytes, "
                              f"file holds {len(data)}")
    return header, data


# ---- validated reads --------------------------------------------------------------------

def check_int(value: Any, what: str, lo: int = 0, hi: int = MAX_NUMEL) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise PackedFileError(f"bad header: {what} must be an integer in [{lo}, {hi}], got {value!r}"[:300])
    return value


def check_shape(shape: Any, what: str) -> list[int]:
    if not isinstance(shape, list) or len(shape) > 8:
        raise PackedFileError(f"bad header: shape of {what} must be a list of at most 8 integers")
    dims = [check_int(d, f"a dimension of {what}", 0, MAX_DIM) for d in shape]
    numel = 1
    for d in dims:
        numel *= d
    if numel > MAX_NUMEL:
        raise PackedFileError(f"bad header: {what} has {numel} elements (limit {MAX_NUMEL})")
    return dims


def section_bytes(entry: Any, data: memoryview, what: str, dtypes: tuple[str, ...]) -> tuple[list[int], memoryview]:
    """The validated (shape, bytes) of a section entry: dtype allowed, size consistent, in bounds."""
    if not isinstance(entry, dict):
        raise PackedFileError(f"bad header: section {what} is not an object")
    dtype = entry.get("dtype")
    if dtype not in dtypes:
        raise PackedFileError((f"bad header: section {what} has dtype {dtype!r}, "
                               f"expected one of {', '.join(dtypes)}")[:300])
    shape = check_shape(entry.get("shape"), what)
    numel = int(np.prod(shape)) if shape else 1
    offset = check_int(entry.get("offset"), f"offset of {what}", 0, MAX_FILE_BYTES)
    nbytes = check_int(entry.get("nbytes"), f"size of {what}", 0, MAX_FILE_BYTES)
    if nbytes != expected_nbytes(dtype, numel):
        raise PackedFileError(f"shape disagrees with size: section {what} of {dtype} {shape} needs "
                              f"{expected_nbytes(dtype, numel)} bytes, header says {nbytes}")
    if offset + nbytes > len(data):
        raise PackedFileError(f"offset past the end: section {what} spans [{offset}, {offset + nbytes}) "
                              f"but the data area has {len(data)} bytes")
    return shape, data[offset:offset + nbytes]


def read_float(entry: Any, data: memoryview, what: str) -> torch.Tensor:
    """A float section as a float32 tensor of its shape."""
    shape, raw = section_bytes(entry, data, what, ("float32", "float16"))
    arr = np.frombuffer(raw, dtype=RAW_DTYPES[entry["dtype"]][0]).astype(np.float32)
    return torch.from_numpy(arr.copy()).reshape(shape)


def read_uint(entry: Any, data: memoryview, what: str, n: int) -> torch.Tensor:
    """A packed n-bit section as an int64 tensor of its shape (n = 1: dtype 'bits')."""
    shape, raw = section_bytes(entry, data, what, ("bits" if n == 1 else f"uint{n}",))
    numel = int(np.prod(shape)) if shape else 1
    packed = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if len(raw) else torch.zeros(0, dtype=torch.uint8)
    return unpack_uint(packed, n, numel).reshape(shape)


def read_raw(entry: Any, data: memoryview, what: str, dtype: str) -> np.ndarray:
    shape, raw = section_bytes(entry, data, what, (dtype,))
    if len(shape) != 1:
        raise PackedFileError(f"bad header: section {what} must be one-dimensional")
    return np.frombuffer(raw, dtype=RAW_DTYPES[dtype][0]).copy()
