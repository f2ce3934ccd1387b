"""Builders shared by the export tests and benchmarks: small BWN/QBN modules with non-trivial state, and the
deterministic seed file the fuzz tests and corpus mutate."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import struct
import tempfile
import zlib
from pathlib import Path

import torch

from qbn.binary import binary_layers
from qbn.export import export_module
from qbn.export.container import MAGIC, PREFIX, PREFIX_BYTES, assemble
from qbn.kernels import ids_to_kernels, is_kernel_tensor
from qbn.kernels.quantize import quantize
from qbn.module import build_module

from .runs import compose_cfg

# the composed configs' run dir, one for all: build_module writes nothing there (it is never created)
RUN_DIR = Path(tempfile.gettempdir()) / "qbn_export_tests" / "run"


def make_module(*overrides: str):
    """A fresh copy of _make_module's module (built once per overrides: building is the slow part)."""
    module, cfg = _make_module(tuple(overrides))
    return copy.deepcopy(module), cfg


@functools.lru_cache(maxsize=8)
def _make_module(overrides: tuple[str, ...]):
    """A BWNModule on the synthetic dataset (16 px, 1 channel, 4 classes) with randomised BN
    statistics and scales, so a round trip that dropped any of them would be caught."""
    cfg = compose_cfg(RUN_DIR, ["dataset=synthetic", *overrides])
    torch.manual_seed(0)
    module = build_module(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in module.net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        for layer in binary_layers(module.net).values():
            alpha = getattr(layer.scaling, "alpha", None)
            if alpha is not None:
                alpha.mul_(torch.rand(alpha.shape, generator=g) + 0.5)
    return module.eval(), cfg


def skew_kernels(module, seed: int = 0, temperature: float = 0.6) -> None:
    """Set every 3x3 binary layer's latent kernels to ids drawn from a skewed distribution
    (entropy well below 9 bits), keeping |w| random so alpha stays non-trivial."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(512, generator=g) / temperature, 0)
    with torch.no_grad():
        for layer in binary_layers(module.net).values():
            w = layer.weight
            if not is_kernel_tensor(w):
                continue
            ids = torch.multinomial(probs, w.shape[0] * w.shape[1], replacement=True, generator=g).view(w.shape[:2])
            w.copy_(ids_to_kernels(ids) * (torch.rand(w.shape, generator=g) + 0.05))


FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures"   # the checkout's (src/qbn/testing/export.py)


def seed_file(fmt: str = "packed") -> bytes:
    """A deterministic file the fuzz tests and tests/corpus/export mutate: resnet20 with QBN n=3
    on layer1.0.conv1 (so a coded codebook is in it); "entropy": skewed kernels in the entropy
    format (coded streams: every BWN layer's kernel ids, the QBN layer's positions); "v1": the
    version-1 fixture (tests/fixtures/model_v1.qbn: per-layer tables, uint9 codebooks)."""
    if fmt == "v1":
        return (FIXTURES / "model_v1.qbn").read_bytes()
    module, cfg = make_module("model=resnet20")
    if fmt == "entropy":
        skew_kernels(module)
    layers = binary_layers(module.net)
    quantize({"layer1.0.conv1": layers["layer1.0.conv1"]}, {"layer1.0.conv1": 3})
    return export_module(module, cfg, fmt=fmt)


def split_file(buf: bytes) -> tuple[dict, bytes]:
    hlen = struct.unpack_from("<I", buf, 12)[0]
    return json.loads(zlib.decompress(buf[PREFIX_BYTES:PREFIX_BYTES + hlen])), buf[PREFIX_BYTES + hlen:]


def assemble_verbatim(header: dict, data: bytes, like: bytes) -> bytes:
    """Like container.assemble but keeps the header's data_bytes as given (a lying header)."""
    hbytes = zlib.compress(json.dumps(header).encode())
    digest = hashlib.sha256(hbytes + data).digest()
    return PREFIX.pack(MAGIC, struct.unpack_from("<I", like, 8)[0], len(hbytes), digest) + hbytes + data


def reassemble(header: dict, data: bytes, like: bytes | None = None) -> bytes:
    """A file with a valid checksum around an edited header (so checks past the checksum run),
    of the format version of the file `like` (default: the current version)."""
    header = dict(header)
    header.pop("data_bytes", None)
    return assemble(header, data) if like is None else assemble(header, data, struct.unpack_from("<I", like, 8)[0])
