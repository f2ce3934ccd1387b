"""From a packed model file back to an inference nn.Module: the full-precision backbone rebuilt
from the header (qbn.models only), its binary layers' weights expanded to alpha * B. Reading a
binary layer is decode (either version), decode_v1 and decode_v2; what a size report needs from
decoding is sizes.coding_stats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import models
from ..module import Normalize, to_unit_float
from ..speed import use_channels_last
from .container import MAX_FILE_BYTES, PREFIX, PackedFileError, check_int, read_float, split
from .decode import decode_layer, effective_weight
from .decode_v2 import decode_coded
from .sizes import coding_stats

MAX_MODEL_NUMEL = 1 << 28  # parameters + buffers of a rebuilt backbone (1 GiB in fp32)
_ARG_KEYS = ("num_classes", "in_channels", "image_size")


class PackedModel(nn.Module):
    """Inference model from a packed file: uint8 or [0, 1] images -> logits (normalisation inside)."""

    def __init__(self, net: nn.Module, normalize: Normalize, header: dict, coding: dict | None = None,
                 channels_last: bool = False):
        super().__init__()
        self.normalize, self.net = normalize, net
        self.header = header
        self.coding = coding or {}  # what the size report needs from decoding (sizes.coding_stats)
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
