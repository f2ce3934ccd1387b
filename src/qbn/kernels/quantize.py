"""Applying QBN to a backbone (plain PyTorch): which layers, n per layer (fixed or by bit
budget), per-layer or shared codebooks counted from the latent signs, and what it changed."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..binary import binary_layers
from ..errors import ConfigError
from ..schema import check_values
from ..schema.qbn import QBNSchema
from ..signs import flip_fraction
from .codebook_choice import (
    MAX_BITS,
    CodebookError,
    bits_accounting,
    choose_bits_by_distortion,
    choose_bits_for_budget,
    distortion_curve,
    select_codebook,
)
from .histograms import histogram, is_kernel_tensor, kernel_ids, overall_histogram


@dataclass
class QBNSettings(QBNSchema):
    """The `qbn` config group (docs/kernels.md): its schema's fields (qbn.schema.qbn; the values come
    from conf/qbn/off.yaml, never from here) and the rules between them. bits None and budget None = off."""

    @classmethod
    def from_dict(cls, d: dict | DictConfig) -> QBNSettings:
        """From a composed config's qbn section (a dict or a DictConfig). Keys this version does not
        know are ignored (older or newer configs still load); one it needs and lacks is named."""
        d = OmegaConf.to_container(d, resolve=True) if isinstance(d, DictConfig) else dict(d)
        missing = [f.name for f in fields(cls) if f.name not in d]
        if missing:
            raise CodebookError(f"qbn.{missing[0]} is missing from the qbn settings: compose them from conf/qbn/")
        s = cls(**{f.name: d[f.name] for f in fields(cls)})
        s.validate()
        return s

    @property
    def enabled(self) -> bool:
        return self.bits is not None or self.budget is not None

    @property
    def learned(self) -> bool:
        return self.enabled and self.method == "learned"

    @property
    def distill_weight(self) -> float:
        return float(self.distill["weight"])

    @property
    def distill_temperature(self) -> float:
        return float(self.distill["temperature"])

    def validate(self) -> None:
        try:  # each option's own range and choices: its schema field says them
            check_values(QBNSchema, vars(self), "qbn.")
        except ConfigError as e:
            raise CodebookError(str(e)) from None
        if not self.enabled:
            stray = [k for k in ("layers", "from_ckpt", "refresh_every", "progressive") if getattr(self, k)]
            stray += ["method=learned"] if self.method == "learned" else []
            stray += ["distill.weight"] if self.distill_weight else []
            if stray:
                raise CodebookError(f"qbn.{stray[0]} is set but QBN is off: "
                                    "set qbn.bits=n (1..9) or qbn.budget=b to turn it on")
        if self.bits is not None and self.budget is not None:
            raise CodebookError("set either qbn.bits (n for every layer) or qbn.budget (bits per weight), not both")
        if self.from_ckpt == "???":
            raise CodebookError("qbn.from_ckpt is required here: give the trained BWN's run directory or checkpoint, "
                                "e.g. qbn.from_ckpt=outputs/bwn/2026-11-26_01-00-00_000000")
        if self.budget is not None and self.codebook != "per_layer":
            raise CodebookError("qbn.budget chooses n per layer and needs qbn.codebook=per_layer")
        if self.method == "learned" and (self.progressive or int(self.refresh_every)):
            raise CodebookError("qbn.method=learned learns its codebooks: qbn.progressive and qbn.refresh_every "
                                "are for qbn.method=topk")
        if self.distill_weight and not self.from_ckpt:
            raise CodebookError("qbn.distill.weight > 0 distils from the BWN of qbn.from_ckpt (the teacher): "
                                "set qbn.from_ckpt")


def quantizable_layers(net: nn.Module, names: list[str] | None = None) -> dict[str, nn.Module]:
    """The 3x3 binary convs of `net` (all, or the named ones: a named layer that is not one is an error)."""
    binary = binary_layers(net)
    convs = {k: m for k, m in binary.items() if is_kernel_tensor(m.weight)}
    if not names:
        return convs
    chosen = {}
    for name in names:
        if name in convs:
            chosen[name] = convs[name]
        elif name in binary:
            raise CodebookError(f"qbn.layers: '{name}' has weight {tuple(binary[name].weight.shape)}; "
                                "only 3x3 binary convs are quantized")
        else:
            raise CodebookError(f"qbn.layers: '{name}' is not a binary layer of this model; "
                                f"3x3 binary convs are: {', '.join(convs)}")
    return chosen


def latent_histogram(layer: nn.Module) -> torch.Tensor:
    """512-bin histogram of the kernels of sign(W) (sign(0) = +1), ignoring any codebook."""
    return histogram(kernel_ids(layer.weight.detach() >= 0))


def plan_bits(settings: QBNSettings, net: nn.Module, layers: dict[str, nn.Module]) -> dict[str, int]:
    """n per quantized layer: qbn.bits everywhere, or chosen to meet qbn.budget: by distortion
    (flipped |w| share against bits) or, with qbn.allocation=coverage, greedily by coverage."""
    if settings.bits is not None:
        return {k: settings.bits for k in layers}
    others = sum(m.weight.numel() for k, m in binary_layers(net).items() if k not in layers)
    hists = {k: latent_histogram(m) for k, m in layers.items()}
    if settings.allocation == "coverage":
        return choose_bits_for_budget(hists, float(settings.budget), others)
    curves = {k: distortion_curve(m.weight, hists[k]) for k, m in layers.items()}
    kernels = {k: m.weight.shape[0] * m.weight.shape[1] for k, m in layers.items()}
    return choose_bits_by_distortion(curves, kernels, float(settings.budget), others)


@torch.no_grad()
def quantize(layers: dict[str, nn.Module], bits: dict[str, int], shared: bool = False) -> dict[str, dict]:
    """Set codebooks (2^n most frequent latent kernels; n = 9 leaves the layer as the BWN) and
    report per layer: n, distinct kernels, coverage of the codebook, share of signs changed."""
    for m in layers.values():
        if m.fixed_signs is not None:
            raise CodebookError("QBN cannot quantize a layer whose signs are fixed (rewinding): "
                                "use rewind=off with qbn")
    hists = {k: latent_histogram(m) for k, m in layers.items()}
    shared_hist = overall_histogram(hists) if shared else None
    report = {}
    for name, layer in layers.items():
        n = bits[name]
        hist = hists[name]
        before = layer.weight.detach() >= 0
        distinct = int((hist > 0).sum())
        entry = {"bits": n, "kernels": int(hist.sum()), "distinct": distinct}
        if n >= MAX_BITS:
            layer.clear_codebook()
            entry.update(quantized=False, unchanged=True, note="n = 9: every kernel kept (the BWN itself)")
        else:
            book = select_codebook(shared_hist if shared else hist, n)
            layer.set_codebook(book)
            changed = flip_fraction(before, layer.signs())
            covered = float(hist[book.to(hist.device)].sum()) / max(int(hist.sum()), 1)
            entry.update(quantized=True, codebook_coverage=covered, signs_changed=changed,
                         unchanged=changed == 0.0)
            if distinct <= 2 ** n and not shared:
                entry["note"] = f"{distinct} distinct kernels <= 2^{n}: left unchanged"
        report[name] = entry
    return report


def refresh(layers: dict[str, nn.Module], shared: bool = False) -> None:
    """Recount the codebooks of quantized layers from their current latent kernels (same sizes)."""
    quantized = {k: m for k, m in layers.items() if m.codebook is not None}
    hists = {k: latent_histogram(m) for k, m in quantized.items()}
    total = overall_histogram(hists) if shared else None
    for k, m in quantized.items():
        m.set_codebook(select_codebook(total if shared else hists[k], m.codebook.numel().bit_length() - 1))


def progressive_due(epoch: int, layers: int, max_epochs: int, every: int | None) -> int:
    """How many layers progressive QBN has quantized by the start of `epoch` (0-based): one per
    `every` epochs, or (every null) spread so all are quantized by the start of the last epoch."""
    if every:
        return min(epoch // every + 1, layers)
    span = max(max_epochs - 1, 1)
    return min(-(-layers * (epoch + 1) // span), layers)


def progressive_order(layers: dict[str, nn.Module], order: str) -> list[str]:
    """Layer names in the order progressive QBN quantizes them (definition order reversed = deepest first)."""
    names = list(layers)
    return names[::-1] if order == "deepest_first" else names


def model_bits(net: nn.Module, bits: dict[str, int], shared: bool = False) -> dict:
    """Bits per binarized weight and whole-model bytes (docs/study.md). Full-precision values count
    32 bits: parameters and float buffers other than latent binary weights, plus one alpha per
    output channel of each binary layer whose scale is computed from W (xnor)."""
    binary = binary_layers(net)
    kernels = {k: m.weight.shape[0] * m.weight.shape[1] for k, m in binary.items() if k in bits}
    others = sum(m.weight.numel() for k, m in binary.items() if k not in bits)
    acc = bits_accounting(kernels, bits, others, shared)
    latent = {id(m.weight) for m in binary.values()}
    fp_values = sum(p.numel() for p in net.parameters() if id(p) not in latent)
    # codebooks and fixed signs are integer/bool buffers, so only BatchNorm statistics count here
    fp_values += sum(b.numel() for b in net.buffers() if b.is_floating_point())
    fp_values += sum(m.weight.shape[0] for m in binary.values() if m.scaling_name == "xnor")
    acc["full_precision_values"] = int(fp_values)
    acc["model_bytes"] = int((acc["binary_bits"] + 7) // 8 + 4 * fp_values)
    return acc

