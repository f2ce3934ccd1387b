"""From a packed model file back to an inference nn.Module: the full-precision backbone rebuilt
from the header (qbn.models only), its binary layers' weights expanded to alpha * B."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import models
from ..kernels import NUM_IDS, histogram, ids_to_kernels, kernel_ids
from ..kernels import entropy as entropy_bits
from ..module import Normalize, to_unit_float
from ..speed import use_channels_last
from . import coding, entropy
from .container import (
    MAX_FILE_BYTES,
    PREFIX,
    PackedFileError,
    check_int,
    check_shape,
    index_bits,
    read_float,
    read_raw,
    read_uint,
    split,
)

MAX_MODEL_NUMEL = 1 << 28  # parameters + buffers of a rebuilt backbone (1 GiB in fp32)
MAX_CODED_ITEMS = 4096  # codebooks or streams of one file (a model has far fewer binary layers)
_ARG_KEYS = ("num_classes", "in_channels", "image_size")


class PackedModel(nn.Module):
    """Inference model from a packed file: uint8 or [0, 1] images -> logits (normalisation inside)."""

    def __init__(self, net: nn.Module, normalize: Normalize, header: dict, coding: dict | None = None,
                 channels_last: bool = False):
        super().__init__()
        self.normalize, self.net = normalize, net
        self.header = header
        self.coding = coding or {}  # what the size report needs from decoding (coding_stats)
        # computed in the memory format qbn trains in by default on a CPU, so predictions equal the
        # BWNModule's bit for bit (docs/speed.md); the values do not depend on it
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_unit_float(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(self.normalize(x))


def build_backbone(spec: Any, device: str | torch.device = "meta") -> nn.Module:
    """The full-precision backbone the header describes; only functions of qbn.models, only
    plain scalar arguments (no code is named by the file beyond that list)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("backbone"), dict):
        raise PackedFileError("bad header: 'model' must hold a 'backbone' object")
    kwargs = dict(spec["backbone"])
    target = kwargs.pop("_target_", None)
    name = target[len("qbn.models."):] if isinstance(target, str) and target.startswith("qbn.models.") else None
    if name not in models.__all__:
        raise PackedFileError(f"bad header: backbone {str(target)[:80]!r} is not one of qbn.models "
                              f"({', '.join(models.__all__)})")
    for key, value in kwargs.items():
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_") or key in _ARG_KEYS:
            raise PackedFileError(f"bad header: backbone argument {str(key)[:40]!r} is not allowed")
        scalar = value is None or isinstance(value, (bool, str, int, float))
        if not scalar or (isinstance(value, str) and len(value) > 64):
            raise PackedFileError(f"bad header: backbone argument {key} must be a short scalar")
        if isinstance(value, int) and not isinstance(value, bool):
            check_int(value, f"backbone argument {key}", 0, 1 << 16)
    num_classes = check_int(spec.get("num_classes"), "model.num_classes", 1, 1 << 16)
    in_channels = check_int(spec.get("in_channels"), "model.in_channels", 1, 64)
    image_size = check_int(spec.get("image_size"), "model.image_size", 1, 4096)
    try:
        with torch.device("meta"):
            net = getattr(models, name)(num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                                        **kwargs)
    except (TypeError, ValueError, RuntimeError) as e:
        raise PackedFileError(f"bad header: cannot build {name} from its arguments ({str(e)[:160]})") from None
    numel = sum(t.numel() for t in net.state_dict().values())
    if numel > MAX_MODEL_NUMEL:
        raise PackedFileError(f"bad header: the model would hold {numel} values (limit {MAX_MODEL_NUMEL})")
    if str(device) != "meta":
        net = net.to_empty(device=device)
    return net


def _replace(net: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, child, new)


def read_header(path: str | Path) -> tuple[dict, int]:
    """The validated header of a file (checksum checked) and the file's size in bytes."""
    buf = read_bytes(path)
    header, _ = split(buf)
    return header, len(buf)


def read_bytes(path: str | Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise PackedFileError(f"{path} does not exist or is not a file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise PackedFileError(f"{path} is {size} bytes, larger than any packed model this reader accepts")
    return path.read_bytes()


def load(path: str | Path, channels_last: bool | None = None) -> PackedModel:
    """Rebuild the inference model stored in a packed file (see docs/format.md); `channels_last`
    None: the memory format of qbn's default (`channels_last: auto`) on a CPU."""
    return load_bytes(read_bytes(path), channels_last)


def decode_layer(name: str, entry: Any, data: memoryview, expected_shape: list[int],
                 coded: dict | None = None) -> dict[str, torch.Tensor]:
    """A binary layer's signs (+-1 float, the weight's shape), alpha and bias, validated.
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
    if coded is not None and name in coded["layer_symbols"] and storage != "entropy":
        raise PackedFileError(f"bad header: {what} is in a coded stream but has storage {str(storage)[:40]!r}")
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
            idx = _entropy_v1(entry, data, what, book, shape)
        else:
            if name not in coded["layer_symbols"]:
                raise PackedFileError(f"bad header: {what} has storage entropy but is in no coded stream")
            symbols, alphabet = coded["layer_symbols"][name]
            if alphabet != (NUM_IDS if book is None else book.numel()):
                raise PackedFileError(f"bad header: {what} is coded over {alphabet} symbols, its "
                                      + ("kernel ids need 512" if book is None else f"codebook holds {book.numel()}"))
            idx = symbols.view(shape[0], shape[1])
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
    if "alpha" in entry:
        alpha = read_float(entry["alpha"], data, f"{what} alpha")
        if list(alpha.shape) != [shape[0]]:
            raise PackedFileError(f"shape disagrees with the header: {what} alpha is {list(alpha.shape)}, "
                                  f"expected [{shape[0]}]")
        out["alpha"] = alpha
    if "bias" in entry:
        bias = read_float(entry["bias"], data, f"{what} bias")
        if list(bias.shape) != [shape[0]]:
            raise PackedFileError(f"shape disagrees with the header: {what} bias is {list(bias.shape)}, "
                                  f"expected [{shape[0]}]")
        out["bias"] = bias
    return out


def _codebook(entry: dict, data: memoryview, what: str, coded: dict | None) -> torch.Tensor | None:
    """A QBN layer's codebook ids (None for a BWN layer): a uint9 section (version 1) or the
    number of a decoded codebook (version 2: sorted ids)."""
    if "codebook" not in entry:
        return None
    if coded is not None:
        j = entry["codebook"]
        if type(j) is not int or not 0 <= j < len(coded["books"]):
            raise PackedFileError(f"bad header: {what} codebook must be the number of one of the file's "
                                  f"{len(coded['books'])} codebooks, got {str(j)[:40]}")
        return torch.from_numpy(coded["books"][j])
    book = read_uint(entry.get("codebook"), data, f"{what} codebook", 9)
    if book.dim() != 1 or not 1 <= book.numel() <= 512:
        raise PackedFileError(f"bad header: {what} codebook must hold 1 to 512 kernel ids")
    return book


def _entropy_v1(entry: dict, data: memoryview, what: str, book: torch.Tensor | None, shape: list[int]) -> torch.Tensor:
    """Version 1: a layer's own table-coded symbols."""
    spec = entry.get("entropy")
    if not isinstance(spec, dict):
        raise PackedFileError(f"bad header: {what} has no entropy section")
    alphabet = NUM_IDS if book is None else book.numel()
    if spec.get("alphabet") != alphabet:
        raise PackedFileError(f"bad header: {what} entropy alphabet {spec.get('alphabet')!r}, expected {alphabet}")
    table = read_raw(spec.get("table"), data, f"{what} entropy table", "uint8").tobytes()
    words = read_raw(spec.get("payload"), data, f"{what} entropy payload", "uint32")
    return entropy.decode(table, words, alphabet, shape[0] * shape[1]).view(shape[0], shape[1])


def decode_coded(header: dict, data: memoryview, kernels: dict[str, int]) -> dict:
    """Version 2: decode the 'coded' payload (codebooks, then streams) after checking its
    description; `kernels`: each binary 3x3 layer's kernel count (from the model)."""
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


def coding_stats(version: int, coded: dict | None, symbols: dict) -> dict:
    """For size reports: the format version; each 3x3 layer's stored symbols (kernel ids, or
    codebook positions for QBN) as {'alphabet', 'entropy'} (empirical, bits per kernel); for
    version 2 the information content (bits) of each codebook and of each coded layer."""
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


def effective_weight(parts: dict[str, torch.Tensor]) -> torch.Tensor:
    """alpha * B exactly as BinaryConv2d computes it (alpha per output channel, fp32)."""
    b = parts["b"]
    if "alpha" not in parts:
        return b
    return parts["alpha"].view(-1, *([1] * (b.dim() - 1))) * b


@torch.no_grad()
def load_bytes(buf: bytes, channels_last: bool | None = None) -> PackedModel:
    """load() on bytes in memory (format version 1 or 2)."""
    header, data = split(buf)
    version = PREFIX.unpack_from(buf)[1]
    for key, kind in (("model", dict), ("layers", dict), ("tensors", dict), ("folded", dict)):
        if not isinstance(header.get(key), kind):
            raise PackedFileError(f"bad header: missing or malformed '{key}'")
    net = build_backbone(header["model"], device="meta")
    modules = dict(net.named_modules())
    folded = header["folded"]
    for conv, bn in folded.items():
        if (not isinstance(bn, str) or not isinstance(modules.get(conv), nn.Conv2d)
                or not isinstance(modules.get(bn), nn.BatchNorm2d)):
            raise PackedFileError(f"bad header: folded pair {str(conv)[:60]} -> {str(bn)[:60]} "
                                  "is not a conv and a BatchNorm of the model")
    for bn in folded.values():
        _replace(net, bn, nn.Identity())
    modules = dict(net.named_modules())
    for name in folded:
        conv = modules[name]
        conv.bias = nn.Parameter(torch.empty(conv.out_channels, device="meta"))
    expected = {k: list(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    net = net.to_empty(device="cpu")
    state: dict[str, torch.Tensor] = {}
    kernels = {}
    for name in header["layers"]:
        module = modules.get(name)
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            raise PackedFileError(f"bad header: binary layer {str(name)[:80]!r} "
                                  "is not a conv or linear layer of the model")
        if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
            kernels[name] = module.weight.shape[0] * module.weight.shape[1]
    coded = decode_coded(header, data, kernels) if version >= 2 else None
    symbols = {}
    for name, entry in header["layers"].items():
        parts = decode_layer(name, entry, data, list(modules[name].weight.shape), coded)
        state[f"{name}.weight"] = effective_weight(parts)
        if "bias" in parts:
            state[f"{name}.bias"] = parts["bias"]
        if "symbols" in parts:
            symbols[name] = (parts["symbols"], parts["alphabet"])
    tensors = header["tensors"]
    norm = {}
    for key in ("normalize.mean", "normalize.std"):
        norm[key] = read_float(tensors.get(key), data, key)
    for key, entry in tensors.items():
        if key in norm:
            continue
        local = key[4:] if isinstance(key, str) and key.startswith("net.") else None
        if local not in expected or local in state:
            raise PackedFileError(f"bad header: tensor {str(key)[:80]!r} "
                                  "is not a tensor of the model (or stored twice)")
        t = read_float(entry, data, key)
        if list(t.shape) != expected[local]:
            raise PackedFileError(f"shape disagrees with the model: {key} is {list(t.shape)} in the header, "
                                  f"{expected[local]} in the model")
        state[local] = t
    missing = [k for k in expected if k not in state]
    if missing:
        raise PackedFileError(f"bad header: the file lacks {len(missing)} tensors of the model (e.g. {missing[0]})")
    for k, v in net.state_dict().items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.zeros_like(v)
    net.load_state_dict(state, strict=True)
    mean, std = norm["normalize.mean"], norm["normalize.std"]
    channels = header["model"]["in_channels"]
    if mean.numel() != channels or std.numel() != channels:
        raise PackedFileError(f"shape disagrees with the model: normalisation has {mean.numel()} values, "
                              f"the model {channels} channels")
    normalize = Normalize(mean.reshape(-1).tolist(), std.reshape(-1).tolist())
    normalize.mean.copy_(mean.reshape(normalize.mean.shape))
    normalize.std.copy_(std.reshape(normalize.std.shape))
    if channels_last is None:
        channels_last = use_channels_last("auto", "cpu")
    model = PackedModel(net, normalize, header, coding_stats(version, coded, symbols), channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()
