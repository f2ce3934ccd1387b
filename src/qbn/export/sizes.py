"""Size accounting of a packed file: per-layer rows and totals in bits, and where the whole
file's bits go (binary kernels, codebooks, scales and BN, full-precision layers, header).

A version-2 file codes its codebooks and entropy-coded layers in one payload; its bits are
shared out by information content (the decoder's -log2 p of each codebook and each layer's
symbols, PackedModel.coding), so the shares add up to the payload exactly.
"""

from __future__ import annotations

import math

import torch

from ..kernels import entropy as entropy_bits
from ..kernels import histogram
from .container import PREFIX_BYTES, index_bits

SPLIT = ("binary kernels", "codebooks", "scales and BN", "fp layers", "header")


def coding_stats(version: int, coded: dict | None, symbols: dict) -> dict:
    """What a size report needs from decoding (PackedModel.coding): the format version; each 3x3
    layer's stored symbols (kernel ids, or codebook positions for QBN) as {'alphabet', 'entropy'}
    (empirical, bits per kernel); for version 2 the information content (bits) of each codebook
    and of each coded layer. `symbols`: layer -> (symbols, alphabet) as decoded."""
    out = {"version": version, "layers": {n: {"alphabet": a, "entropy": entropy_bits(histogram(s, a))}
                                          for n, (s, a) in symbols.items()}}
    if coded is not None:
        out["book_bits"] = coded["book_bits"]
        out["layer_bits"] = {}
        for names, bits in zip(coded["stream_layers"], coded["stream_bits"], strict=True):
            # a stream's bits shared among its layers by each layer's information content under
            # the stream's final counts (the adaptive model's own cost is not separable by layer)
            total = sum(symbols[n][0].numel() for n in names)
            counts = sum(histogram(symbols[n][0], symbols[n][1]) for n in names).double()
            logp = torch.log2(counts.clamp(min=1) / max(total, 1))
            share = {n: -float(logp[symbols[n][0].reshape(-1)].sum()) for n in names}
            norm = sum(share.values()) or 1.0
            for n in names:
                out["layer_bits"][n] = bits * share[n] / norm
    return out


def _numel(entry: dict) -> int:
    return math.prod(entry["shape"]) if entry["shape"] else 1


def _payload_shares(header: dict, coding: dict) -> tuple[dict[str, float], list[float]]:
    """Bits of the version-2 payload per coded layer and per codebook."""
    coded = header.get("coded") or {}
    if not coded.get("payload"):
        return {}, []
    layer_info, book_info = coding.get("layer_bits", {}), coding.get("book_bits", [])
    info = sum(layer_info.values()) + sum(book_info)
    bits = 8 * coded["payload"]["nbytes"]
    scale = bits / info if info else 0.0
    return {k: v * scale for k, v in layer_info.items()}, [v * scale for v in book_info]


def size_report(header: dict, header_bytes: int, file_bytes: int | None = None, coding: dict | None = None) -> dict:
    """{'rows': [...], 'totals': {...}} for a validated header; `coding`: the loaded model's
    PackedModel.coding (symbol entropies, and the payload's information split in version 2)."""
    coding = coding or {}
    seen: set[tuple[int, int]] = set()

    def once(sec) -> int:
        """Bytes of a section, counted once (a shared codebook is stored once)."""
        if not isinstance(sec, dict):
            return 0
        key = (sec["offset"], sec["nbytes"])
        if key in seen:
            return 0
        seen.add(key)
        return sec["nbytes"]

    layer_share, book_share = _payload_shares(header, coding)
    books_counted: set[int] = set()
    split = dict.fromkeys(SPLIT, 0.0)
    rows, binarized, weight_bits, scale_bits = [], 0, 0.0, 0
    stats = coding.get("layers", {})
    for name, e in header["layers"].items():
        shape = e["shape"]
        n = math.prod(shape)
        kernel_bits = 8.0 * (once(e.get("signs")) + once(e.get("indices"))) + layer_share.get(name, 0.0)
        book_bits = 0.0
        if e.get("entropy"):   # version 1: the layer's own table and payload
            kernel_bits += 8.0 * (once(e["entropy"]["table"]) + once(e["entropy"]["payload"]))
        if isinstance(e.get("codebook"), dict):   # version 1: a uint9 section
            book_bits = 8.0 * once(e["codebook"])
        elif isinstance(e.get("codebook"), int) and e["codebook"] not in books_counted:
            books_counted.add(e["codebook"])
            book_bits = book_share[e["codebook"]] if e["codebook"] < len(book_share) else 0.0
        abytes, bbytes = once(e.get("alpha")), once(e.get("bias"))
        extra = (_numel(e["alpha"]) if e.get("alpha") else 0) + (_numel(e["bias"]) if e.get("bias") else 0)
        kind = {"signs": "binary", "codebook": "qbn", "entropy": "entropy"}[e["storage"]]
        if "codebook" in e:
            k = header["coded"]["codebooks"][e["codebook"]] if isinstance(e["codebook"], int) else _numel(e["codebook"])
            kind = f"qbn {index_bits(k)}-bit" + (" +entropy" if e["storage"] == "entropy" else "")
        wbits = kernel_bits + book_bits
        rows.append({"layer": name, "kind": kind, "shape": shape, "params": n + extra,
                     "bits_per_weight": wbits / n, "bytes": (wbits + 8 * (abytes + bbytes)) / 8,
                     "scaling": e.get("scaling"), "entropy": stats.get(name, {}).get("entropy")})
        binarized += n
        weight_bits += wbits
        scale_bits += 8 * abytes
        split["binary kernels"] += kernel_bits
        split["codebooks"] += book_bits
        split["scales and BN"] += 8 * (abytes + bbytes)
    fp_values = sum(_numel(e["bias"]) for e in header["layers"].values() if e.get("bias"))
    groups: dict[str, dict] = {}
    for key, t in header["tensors"].items():
        module = key.rpartition(".")[0].removeprefix("net.")
        g = groups.setdefault(module, {"layer": module, "kind": t.get("kind", "fp"), "shape": None,
                                       "params": 0, "bytes": 0})
        if key.endswith(".weight") or g["shape"] is None:
            g["shape"] = t["shape"]
        g["params"] += _numel(t)
        nbytes = once(t)
        g["bytes"] += nbytes
        split["scales and BN" if t.get("kind") == "bn" else "fp layers"] += 8 * nbytes
    for g in groups.values():
        g["bits_per_weight"] = 8 * g["bytes"] / max(g["params"], 1)
        g["entropy"] = None
        fp_values += g["params"]
        rows.append(g)
    order = {n: i for i, n in enumerate(header.get("order") or []) if isinstance(n, str)}
    rows.sort(key=lambda r: order.get(r["layer"], len(order)))
    data_bytes = header["data_bytes"]
    params = binarized + fp_values
    split["header"] = 8.0 * (PREFIX_BYTES + header_bytes)
    totals = {
        "params": params, "binarized_weights": binarized,
        "bits_per_binarized_weight": weight_bits / binarized if binarized else None,
        "bits_per_binarized_weight_with_scales": (weight_bits + scale_bits) / binarized if binarized else None,
        "file_bits_per_binarized_weight": (8 * (PREFIX_BYTES + header_bytes + data_bytes) / binarized
                                           if binarized else None),
        "split_bits_per_binarized_weight": {k: v / binarized for k, v in split.items()} if binarized else None,
        "data_bytes": data_bytes, "header_bytes": PREFIX_BYTES + header_bytes,
        "computed_file_bytes": PREFIX_BYTES + header_bytes + data_bytes, "file_bytes": file_bytes,
        "fp32_bytes": 4 * params,
        "compression": (4 * params / file_bytes) if file_bytes else None,
        "format": header.get("options", {}).get("format"), "version": coding.get("version"),
    }
    return {"rows": rows, "totals": totals}
