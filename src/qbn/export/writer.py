"""From a BWNModule (latent weights) to the bytes of a packed model file (docs/format.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..binary import binary_layers
from ..config import to_plain
from ..errors import QbnError
from ..kernels import NUM_IDS, ids_to_kernels, is_kernel_tensor, kernel_ids
from ..kernels.learned import frozen_copy
from . import adaptive, coding
from .container import SectionWriter, assemble, index_bits
from .decode import effective_weight
from .fold import bn_scale_shift, conv_bn_pairs
from .loader import build_backbone

FORMATS = ("packed", "entropy")
DTYPES = {"fp16": "float16", "fp32": "float32", "float16": "float16", "float32": "float32"}


def model_spec(cfg: Any) -> dict:
    """What the loader needs to rebuild the backbone: qbn.models function, its arguments, the
    input shape and classes (from the run's composed config)."""
    ds = cfg.dataset
    backbone = to_plain(cfg.model.backbone)
    # the backbones' default: left out, so files stay as they were before the option
    if backbone.get("norm") == "batch":
        del backbone["norm"]
    return {"name": str(cfg.model.name), "backbone": backbone,
            "num_classes": int(ds.num_classes), "in_channels": int(ds.in_channels), "image_size": int(ds.image_size)}


def _check_options(fmt: str, alpha_dtype: str, fp_dtype: str) -> tuple[str, str]:
    if fmt not in FORMATS:
        raise QbnError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    for what, d in (("--alpha-dtype", alpha_dtype), ("--fp-dtype", fp_dtype)):
        if d not in DTYPES:
            raise QbnError(f"{what} {d}: choose fp16 or fp32")
    return DTYPES[alpha_dtype], DTYPES[fp_dtype]


@torch.no_grad()
def _layer_form(name: str, layer: nn.Module) -> dict:
    """The stored form of a binary layer: signs or codebook + indices, alpha; checked against
    the weight its forward computes with, exactly."""
    w = layer.weight
    codebook = getattr(layer, "codebook", None)
    form: dict[str, Any] = {"alpha": layer.alpha()}
    if codebook is not None:
        form["codebook"] = codebook.detach().cpu().long().reshape(-1)
        form["indices"] = layer.codebook_indices().cpu().long()
        b = ids_to_kernels(form["codebook"][form["indices"]]).to(w.dtype)
        form["signs"] = b > 0
    else:
        form["signs"] = layer.signs().cpu()
        b = form["signs"].to(w.dtype) * 2 - 1
    alpha = form["alpha"]
    if alpha is not None:
        if alpha.numel() != w.shape[0]:
            raise QbnError(f"layer {name}: alpha has {alpha.numel()} values, "
                           f"expected one per output channel ({w.shape[0]})")
        form["alpha"] = alpha.detach().cpu().to(w.dtype).reshape(-1)
    # the weight the loader will rebuild from what is stored, computed by the decoder's own code
    parts = {"b": b} if form["alpha"] is None else {"b": b, "alpha": form["alpha"]}
    if not torch.equal(layer.effective_weight().detach().cpu(), effective_weight(parts)):
        raise QbnError(f"layer {name}: its forward weight is not alpha * B of its signs; cannot pack it exactly")
    return form


def pack_module(module: nn.Module, spec: dict, fmt: str = "packed", alpha_dtype: str = "fp32",
                fp_dtype: str = "fp32", fold_bn: bool = False, source: dict | None = None) -> bytes:
    """The packed file's bytes for a BWNModule-like module (`.net`, `.normalize`)."""
    alpha_dt, fp_dt = _check_options(fmt, alpha_dtype, fp_dtype)
    net = frozen_copy(module.net)   # learned patterns (a checkpoint from before the freeze) as codebooks
    layers = binary_layers(net)
    folded = {}
    if fold_bn:
        folded = conv_bn_pairs(build_backbone(spec, device="meta"))
    out = SectionWriter()
    books: dict[bytes, int] = {}   # sorted codebook ids -> its number (a shared codebook is stored once)
    header_layers: dict[str, dict] = {}
    stored: dict[str, tuple] = {}  # layer -> (form, alpha, bias) as stored
    symbols: dict[str, tuple[np.ndarray, int]] = {}  # 3x3 layer -> (kernel symbols, alphabet)
    for name, layer in layers.items():
        form = _layer_form(name, layer)
        entry: dict[str, Any] = {"module": "conv2d" if isinstance(layer, nn.Conv2d) else "linear",
                                 "shape": list(layer.weight.shape), "scaling": layer.scaling_name}
        alpha, bias = form["alpha"], (layer.bias.detach().cpu().double() if layer.bias is not None else None)
        if name in folded:
            s, t = bn_scale_shift(net.get_submodule(folded[name]))
            alpha = (alpha.double() if alpha is not None else torch.ones_like(s)) * s
            bias = t + (s * bias if bias is not None else 0)
        if "codebook" in form:
            book, positions = sorted_codebook(form["codebook"], form["indices"])
            entry["codebook"] = books.setdefault(book.tobytes(), len(books))
            entry["storage"] = "codebook"
            symbols[name] = (positions, len(book))
        elif is_kernel_tensor(form["signs"]):
            entry["storage"] = "signs"
            symbols[name] = (kernel_ids(form["signs"]).numpy().reshape(-1), NUM_IDS)
        else:
            entry["storage"] = "signs"
        stored[name] = (form, alpha, bias)
        header_layers[name] = entry

    streams = _streams(header_layers, symbols) if fmt == "entropy" else []
    coded = {name for stream in streams for name in stream["layers"]}
    for name, entry in header_layers.items():
        form, alpha, bias = stored[name]
        if name in coded:
            entry["storage"] = "entropy"
        elif entry["storage"] == "codebook":
            positions, k = symbols[name]
            entry["indices"] = out.uint(torch.from_numpy(positions).view(entry["shape"][:2]), index_bits(k))
        else:
            entry["signs"] = out.bits(form["signs"])
        if alpha is not None:
            entry["alpha"] = out.tensor(alpha.float(), alpha_dt)
        if bias is not None:
            entry["bias"] = out.tensor(bias.float(), fp_dt)
    book_list = [np.frombuffer(key, dtype=np.int64) for key in books]
    payload = coding.encode(book_list, [(np.concatenate([symbols[n][0] for n in st["layers"]]), st["alphabet"],
                                         tuple(st["prior"])) for st in streams])
    coded_header = {"payload": out.raw(payload, "uint32"), "codebooks": [len(b) for b in book_list], "streams": streams}

    tensors: dict[str, dict] = {}
    for key in ("mean", "std"):
        tensors[f"normalize.{key}"] = dict(out.tensor(getattr(module.normalize, key), "float32"), kind="normalize")
    # a binary layer's weight, bias and alpha are stored above; its optional buffers (fixed signs,
    # codebook) are not fp tensors of the model the loader rebuilds
    skip = {f"{n}.{suffix}" for n, m in layers.items()
            for suffix in ("weight", "bias", "scaling.alpha", *m.optional_buffers)}
    skip |= {f"{bn}.{k}" for bn in folded.values()
             for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    state = net.state_dict()
    for key, t in state.items():
        if key in skip or key.endswith("num_batches_tracked"):
            continue
        if not t.is_floating_point():
            raise QbnError(f"cannot pack {key}: a non-float tensor the format does not know")
        owner = net.get_submodule(key.rpartition(".")[0]) if "." in key else net
        kind = "bn" if isinstance(owner, nn.modules.batchnorm._NormBase) else "fp"
        conv = key.rpartition(".")[0]
        if conv in folded and key.endswith(".weight"):
            s, t_shift = bn_scale_shift(net.get_submodule(folded[conv]))
            t = (t.double() * s.view(-1, *([1] * (t.dim() - 1)))).float()
            bias = state.get(f"{conv}.bias")
            shift = t_shift + (s * bias.double() if bias is not None else 0)
            tensors[f"net.{conv}.bias"] = dict(out.tensor(shift.float(), fp_dt), kind="fp")
        elif conv in folded and key.endswith(".bias"):
            continue  # already folded into the shift above
        tensors[f"net.{key}"] = dict(out.tensor(t, fp_dt), kind=kind)

    header = {
        "format": "qbn-packed", "producer": f"qbn {__version__}",
        "model": spec, "options": {"format": fmt, "alpha_dtype": alpha_dt, "fp_dtype": fp_dt, "fold_bn": bool(fold_bn)},
        "folded": folded, "layers": header_layers, "coded": coded_header, "tensors": tensors, "source": source or {},
        "order": ["normalize"] + [n for n, _ in net.named_modules() if n],  # for reports: definition order
    }
    return assemble(header, bytes(out.data))


def sorted_codebook(book: torch.Tensor, indices: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A codebook as the sorted set of its ids, and each kernel's position in that set (the same
    kernel as book[indices]; the file stores sets, whose order costs no bits). A learned codebook
    can repeat an id: the set holds it once."""
    ids = book.numpy().astype(np.int64)
    order = np.unique(ids)
    position = np.empty(NUM_IDS, dtype=np.int64)
    position[order] = np.arange(len(order))
    return order, position[ids[indices.numpy().reshape(-1)]]


def _streams(entries: dict[str, dict], symbols: dict[str, tuple[np.ndarray, int]]) -> list[dict]:
    """The entropy format's streams: every BWN 3x3 layer's kernel ids in one stream (one model
    for the whole network: no per-layer table to pay for), each QBN layer's codebook positions in
    its own. A stream is kept only when its closed-form cost (plus 64 bits of coder flush) is
    below the packed storage of its layers, so the entropy format is never larger."""
    groups = [[n for n, e in entries.items() if n in symbols and "codebook" not in e]]
    groups += [[n] for n, e in entries.items() if "codebook" in e]
    streams = []
    for names in groups:
        if not names:
            continue
        s = np.concatenate([symbols[n][0] for n in names])
        alphabet = symbols[names[0]][1]
        counts = np.bincount(s, minlength=alphabet)
        prior = adaptive.best_prior(counts)
        packed = sum(len(symbols[n][0]) * (9 if alphabet == NUM_IDS else index_bits(alphabet)) for n in names)
        if adaptive.dirichlet_bits(counts, prior) + 64 < packed:
            streams.append({"layers": names, "alphabet": alphabet, "prior": list(prior)})
    return streams
