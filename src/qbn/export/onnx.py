"""A trained BWN or QBN as a standard ONNX model (docs/onnx.md), for runtimes other than qbn.

The model is the packed file's (qbn.export.loader: every binary weight already alpha * B, a QBN
kernel its codeword), with each BatchNorm that directly follows a conv folded into that conv
(exact in real arithmetic; computed in float64, then rounded once to float32). Input `images`:
float32 N x C x H x W in [0, 1] (the normalisation is inside the model); output `logits`: N x classes.
The batch dimension is dynamic. onnx, onnxscript and onnxruntime come with the optional `onnx` extra.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import model_from_checkpoint, run_dir_of
from ..errors import QbnError
from ..rundir import RunDir
from .files import export_module, is_packed_file, write_atomic
from .fold import bn_scale_shift, conv_bn_pairs
from .loader import PackedModel, load, load_bytes

ONNX_NAME = RunDir.ONNX
WRITES = (RunDir.ONNX,)   # into the run directory, by default
INPUT, OUTPUT = "images", "logits"


def _require_onnx():
    try:
        import onnx  # optional dependency, loaded only when exporting to ONNX
        import onnxscript  # noqa: F401  torch.onnx's exporter needs it
    except ImportError as e:
        raise QbnError(f"ONNX export needs the optional packages onnx, onnxscript and onnxruntime ({e.name} is "
                       "missing): pip install 'qbn[onnx]'") from None
    return onnx


def inference_model(source: str | Path) -> PackedModel:
    """The inference model of a packed .qbn file, or of a run directory / checkpoint (packed in
    memory first, so the ONNX model is exactly what the packed file would hold)."""
    source = Path(source)
    if not source.exists():
        raise QbnError(f"{source} does not exist: give a run directory, a checkpoint or a packed .qbn file")
    if is_packed_file(source):
        return load(source)
    module, cfg = model_from_checkpoint(source, require_binary=False)
    return load_bytes(export_module(module, cfg))


@torch.no_grad()
def fold_batchnorm(model: PackedModel) -> PackedModel:
    """Fold every BatchNorm that directly follows a conv into the conv (weight * s, bias * s + t), in place."""
    net = model.net
    modules = dict(net.named_modules())
    for conv_name, bn_name in conv_bn_pairs(net).items():
        conv, bn = modules[conv_name], modules[bn_name]
        s, t = bn_scale_shift(bn)
        weight = conv.weight.double() * s.view(-1, *([1] * (conv.weight.dim() - 1)))
        bias = t if conv.bias is None else conv.bias.double() * s + t
        conv.weight = nn.Parameter(weight.float(), requires_grad=False)
        conv.bias = nn.Parameter(bias.float(), requires_grad=False)
        parent, _, child = bn_name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, child, nn.Identity())
    return model


def onnx_bytes(model: nn.Module) -> bytes:
    """The serialized ONNX model of an inference model (images in [0, 1] -> logits), checked by onnx.checker."""
    onnx = _require_onnx()
    spec = model.header["model"]
    example = torch.rand(2, int(spec["in_channels"]), int(spec["image_size"]), int(spec["image_size"]))
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model.eval(), (example,), dynamo=True, verbose=False, input_names=[INPUT],
                                    output_names=[OUTPUT], dynamic_shapes=({0: torch.export.Dim("batch")},))
    proto = program.model_proto
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def export_onnx(source: str | Path, out: str | Path | None = None) -> Path:
    """Write `source`'s model (run directory, checkpoint or packed file) as ONNX; default: model.onnx
    in the run directory, or beside the packed file. Written to a temp file and renamed."""
    _require_onnx()  # before any work: a missing package is one line, at once
    source = Path(source)
    model = fold_batchnorm(inference_model(source))
    if out is None:
        run_dir = None if is_packed_file(source) else run_dir_of(source if source.is_dir() else source.parent)
        out = RunDir(run_dir).onnx if run_dir is not None else source.with_suffix(".onnx")
    write_atomic(out, onnx_bytes(model))
    return Path(out)
