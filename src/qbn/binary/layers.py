"""Binary-weight layers: the latent real weight is the trainable Parameter; forward uses
W_hat = alpha * B with B = sign(W) through the STE (docs/study.md).

Optional state rides along as buffers so it is saved in checkpoints and packed files:
- `fixed_signs` (bool, True = +1): signs fixed by rewinding; with `fixed_mask` (bool) only
  the masked weights are fixed and the rest follow sign(W).
- `codebook` (long, 2^n kernel ids, most frequent first): QBN; each 3x3 kernel is replaced by
  its codeword c* = argmax_{c in K} <w, c> (qbn.binary.kernel_mapping), gradients reach W through the STE.
- `patterns` (an optional Parameter, K x 3 x 3): a learned codebook (qbn.method=learned) while it
  trains; each kernel takes sign(p*) of the pattern maximising <w, sign(p)>, and freezing turns
  it into the `codebook` of the patterns' sign ids (the same forward).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .kernel_mapping import learned_ste, map_to_codebook, pattern_ids, quantize_ste, quantized_kernels
from .scaling import make_scaling
from .ste import sign_ste


class BinaryWeightMixin:
    """What every binary layer shares: binary signs, scaling, fixed signs."""

    # Buffers that exist only when used; loading a state dict that has them creates them.
    optional_buffers: tuple[str, ...] = ("fixed_signs", "fixed_mask", "codebook")

    def _init_binary(self, scaling: str, ste: str) -> None:
        self.scaling_name = scaling
        self.ste = ste
        self.scaling = make_scaling(scaling, self.weight)
        for name in self.optional_buffers:
            self.register_buffer(name, None)
        self.register_parameter("patterns", None)

    def binary_weight(self) -> torch.Tensor:
        """B in {-1, +1}, with the STE's gradient to the latent weight where B follows it."""
        if self.codebook is not None:
            return quantize_ste(self.weight, self.codebook, self.ste)
        if self.patterns is not None:
            return learned_ste(self.weight, self.patterns, self.ste)
        b = sign_ste(self.weight, self.ste)
        if self.fixed_signs is not None:
            fixed = self.fixed_signs.to(b.dtype) * 2 - 1
            b = fixed if self.fixed_mask is None else torch.where(self.fixed_mask, fixed, b)
        return b

    def alpha(self) -> torch.Tensor | None:
        """The scaling factor shaped to broadcast over the weight (None: alpha = 1)."""
        return self.scaling(self.weight)

    def effective_weight(self) -> torch.Tensor:
        """alpha * B: the weight the layer computes with."""
        grouped = self._take_grouped_weight()
        if grouped is not None:
            return grouped
        b = self.binary_weight()
        a = self.alpha()
        w_hat = b if a is None else a * b
        # In the latent weight's memory format, so a channels_last conv computes as the packed model does:
        # fixed signs come NCHW, and elementwise ops give a 1-channel kernel NCHW strides. (Free in NCHW.)
        return w_hat if w_hat.stride() == self.weight.stride() else torch.empty_like(self.weight).copy_(w_hat)

    def _take_grouped_weight(self) -> torch.Tensor | None:
        """alpha * B as the model's forward pre-hook computed it for this pass (qbn.binary.grouped),
        taken once; None when there is none, or it is stale (the latent weight changed since), and
        always under torch.compile, where the hook hands nothing over (qbn.binary.grouped)."""
        if torch.compiler.is_compiling():
            return None
        handed = self.__dict__.pop("_grouped_weight", None)
        if handed is None or handed[1] != self.weight._version:
            return None
        return handed[0]

    @torch.no_grad()
    def signs(self) -> torch.Tensor:
        """The binary signs used in forward as a bool tensor (True = +1), no gradient."""
        ids = self._codebook_ids()
        if ids is not None:
            return quantized_kernels(self.weight, ids) > 0
        b = self.weight >= 0  # sign(w) = +1 exactly where w >= 0
        if self.fixed_signs is not None:
            b = self.fixed_signs if self.fixed_mask is None else torch.where(self.fixed_mask, self.fixed_signs, b)
        return b

    def fix_signs(self, signs: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Fix the binary signs to `signs` (bool, True = +1); only where `mask` is True if given."""
        if signs.shape != self.weight.shape or (mask is not None and mask.shape != self.weight.shape):
            raise ValueError(f"fixed signs of shape {tuple(signs.shape)} do not fit weight {tuple(self.weight.shape)}")
        if self._codebook_ids() is not None:
            raise ValueError("this layer is quantized to a kernel codebook (QBN); "
                             "fixed signs and a codebook cannot be combined")
        self.fixed_signs = signs.to(device=self.weight.device, dtype=torch.bool).clone()
        self.fixed_mask = None if mask is None else mask.to(device=self.weight.device, dtype=torch.bool).clone()

    def release_signs(self) -> None:
        self.fixed_signs = None
        self.fixed_mask = None

    def set_codebook(self, ids: torch.Tensor) -> None:
        """Quantize every 3x3 kernel to the codebook `ids` (2^n kernel ids, most frequent first)."""
        ids = torch.as_tensor(ids).long().reshape(-1)
        n = ids.numel().bit_length() - 1
        if ids.numel() != 2 ** n or not 0 <= int(ids.min()) <= int(ids.max()) <= 511:
            raise ValueError(f"a codebook holds 2^n kernel ids in 0..511, got {ids.numel()} ids")
        self._check_codebook()
        self.codebook = ids.to(self.weight.device).clone()

    def clear_codebook(self) -> None:
        self.codebook = None
        self.patterns = None

    def set_patterns(self, patterns: nn.Parameter) -> None:
        """Learn this layer's codebook: `patterns` (K = 2^n x 3 x 3, a Parameter, shared or not)."""
        n = patterns.shape[0].bit_length() - 1
        if patterns.dim() != 3 or tuple(patterns.shape[1:]) != (3, 3) or patterns.shape[0] != 2 ** n:
            raise ValueError(f"learned patterns are 2^n x 3 x 3, got shape {tuple(patterns.shape)}")
        self._check_codebook()
        self.codebook = None
        self.patterns = patterns

    @torch.no_grad()
    def freeze_patterns(self) -> None:
        """The learned patterns become a fixed codebook of their sign ids (forward unchanged)."""
        ids = pattern_ids(self.patterns)
        self.patterns = None
        self.set_codebook(ids)

    def _codebook_ids(self) -> torch.Tensor | None:
        """The codebook forward maps kernels to: the fixed one, or the learned patterns' sign ids."""
        if self.codebook is not None:
            return self.codebook
        return None if self.patterns is None else pattern_ids(self.patterns)

    def _check_codebook(self) -> None:
        """Refuse a codebook where it cannot apply; checked when one is set or loaded, not per forward."""
        if not (self.weight.dim() == 4 and tuple(self.weight.shape[-2:]) == (3, 3)):
            raise ValueError("only 3x3 binary convs take a kernel codebook; "
                             f"this layer's weight is {tuple(self.weight.shape)}")
        if self.fixed_signs is not None:
            raise ValueError("this layer has fixed signs (rewinding); "
                             "fixed signs and a kernel codebook (QBN) cannot be combined")

    @torch.no_grad()
    def codebook_indices(self) -> torch.Tensor:
        """Index into the codebook of each kernel used in forward (LongTensor O x I)."""
        ids = self._codebook_ids()
        if ids is None:
            raise ValueError("this layer has no kernel codebook")
        return map_to_codebook(self.weight, ids)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in self.optional_buffers:
            if prefix + name in state_dict and getattr(self, name) is None:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        # learned patterns follow the state: created (or reshaped) when it has them, dropped when not
        saved = state_dict.get(prefix + "patterns")
        if saved is None:
            self.patterns = None
        elif self.patterns is None or self.patterns.shape != saved.shape:
            self.patterns = nn.Parameter(torch.empty_like(saved, device=self.weight.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.codebook is not None:
            self._check_codebook()

    def extra_repr(self) -> str:
        if self.fixed_signs is None:
            fixed = ""
        else:
            fixed = ", signs=fixed" if self.fixed_mask is None else ", signs=partly fixed"
        if self.codebook is not None:
            fixed += f", codebook={self.codebook.numel()}"
        if self.patterns is not None:
            fixed += f", patterns={self.patterns.shape[0]}"
        return f"{super().extra_repr()}, scaling={self.scaling_name}, ste={self.ste}{fixed}"


class BinaryConv2d(BinaryWeightMixin, nn.Conv2d):
    """nn.Conv2d whose forward uses alpha * sign(W)."""

    def __init__(self, *args, scaling: str = "xnor", ste: str = "clipped", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_binary(scaling, ste)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, scaling: str = "xnor", ste: str = "clipped") -> BinaryConv2d:
        """Swap in for `conv`, keeping its weight (and bias) Parameter objects as the latent state."""
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                    bias=conv.bias is not None, padding_mode=conv.padding_mode, device="meta",
                    scaling="none", ste=ste)
        layer.weight = conv.weight
        layer.bias = conv.bias
        layer.scaling_name = scaling
        layer.scaling = make_scaling(scaling, conv.weight)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)


class BinaryLinear(BinaryWeightMixin, nn.Linear):
    """nn.Linear whose forward uses alpha * sign(W) (for a binarized classifier, off by default)."""

    def __init__(self, *args, scaling: str = "xnor", ste: str = "clipped", **kwargs):
        super().__init__(*args, **kwargs)
        self._init_binary(scaling, ste)

    @classmethod
    def from_linear(cls, linear: nn.Linear, scaling: str = "xnor", ste: str = "clipped") -> BinaryLinear:
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                    device="meta", scaling="none", ste=ste)
        layer.weight = linear.weight
        layer.bias = linear.bias
        layer.scaling_name = scaling
        layer.scaling = make_scaling(scaling, linear.weight)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)


BINARY_LAYERS = (BinaryConv2d, BinaryLinear)
