"""Size accounting of a packed file from its header alone: per-layer rows and totals in bits."""

from __future__ import annotations

import math

from .container import PREFIX_BYTES, index_bits

_WEIGHT_SECTIONS = ("signs", "indices", "codebook")


def _numel(entry: dict) -> int:
    return math.prod(entry["shape"]) if entry["shape"] else 1


def size_report(header: dict, header_bytes: int, file_bytes: int | None = None) -> dict:
    """{'rows': [...], 'totals': {...}} for a validated header (docs/format.md, 'Sizes')."""
    seen: set[tuple[int, int]] = set()

    def once(sec: dict | None) -> int:
        """Bytes of a section, counted once (a shared codebook is stored once)."""
        if not sec:
            return 0
        key = (sec["offset"], sec["nbytes"])
        if key in seen:
            return 0
        seen.add(key)
        return sec["nbytes"]

    rows, binarized, weight_bits, scale_bits, fp_values = [], 0, 0, 0, 0
    for name, e in header["layers"].items():
        shape = e["shape"]
        n = math.prod(shape)
        wbytes = sum(once(e.get(k)) for k in _WEIGHT_SECTIONS)
        if e.get("entropy"):
            wbytes += once(e["entropy"]["table"]) + once(e["entropy"]["payload"])
        abytes, bbytes = once(e.get("alpha")), once(e.get("bias"))
        extra = (_numel(e["alpha"]) if e.get("alpha") else 0) + (_numel(e["bias"]) if e.get("bias") else 0)
        kind = {"signs": "binary", "codebook": "qbn", "entropy": "entropy"}[e["storage"]]
        if e.get("codebook"):
            k = _numel(e["codebook"])
            kind = f"qbn {index_bits(k)}-bit" + (" +entropy" if e["storage"] == "entropy" else "")
        rows.append({"layer": name, "kind": kind, "shape": shape, "params": n + extra,
                     "bits_per_weight": 8 * wbytes / n, "bytes": wbytes + abytes + bbytes, "scaling": e.get("scaling")})
        binarized += n
        weight_bits += 8 * wbytes
        scale_bits += 8 * abytes
        fp_values += (_numel(e["bias"]) if e.get("bias") else 0)
    groups: dict[str, dict] = {}
    for key, t in header["tensors"].items():
        module = key.rpartition(".")[0].removeprefix("net.")
        g = groups.setdefault(module, {"layer": module, "kind": t.get("kind", "fp"), "shape": None, "params": 0, "bytes": 0})
        if key.endswith(".weight") or g["shape"] is None:
            g["shape"] = t["shape"]
        g["params"] += _numel(t)
        g["bytes"] += once(t)
    for g in groups.values():
        g["bits_per_weight"] = 8 * g["bytes"] / max(g["params"], 1)
        fp_values += g["params"]
        rows.append(g)
    order = {n: i for i, n in enumerate(header.get("order") or []) if isinstance(n, str)}
    rows.sort(key=lambda r: order.get(r["layer"], len(order)))
    data_bytes = header["data_bytes"]
    params = binarized + fp_values
    totals = {
        "params": params, "binarized_weights": binarized,
        "bits_per_binarized_weight": weight_bits / binarized if binarized else None,
        "bits_per_binarized_weight_with_scales": (weight_bits + scale_bits) / binarized if binarized else None,
        "data_bytes": data_bytes, "header_bytes": PREFIX_BYTES + header_bytes,
        "computed_file_bytes": PREFIX_BYTES + header_bytes + data_bytes, "file_bytes": file_bytes,
        "fp32_bytes": 4 * params,
        "compression": (4 * params / file_bytes) if file_bytes else None,
        "format": header.get("options", {}).get("format"),
    }
    return {"rows": rows, "totals": totals}
