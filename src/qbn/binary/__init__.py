"""The mathematics of binary weights: sign + STE, scaling, binary layers, conversion, packing."""

from .convert import BinaryPolicy, binarize, binary_layers, binary_param_count
from .grouped import group_binarization, is_grouped
from .layers import BINARY_LAYERS, BinaryConv2d, BinaryLinear
from .packing import pack_bits, unpack_bits
from .scaling import SCALINGS, make_scaling
from .ste import STE_MODES, sign, sign_ste

__all__ = [
    "BINARY_LAYERS", "SCALINGS", "STE_MODES", "BinaryConv2d", "BinaryLinear", "BinaryPolicy",
    "binarize", "binary_layers", "binary_param_count", "group_binarization", "is_grouped", "make_scaling", "pack_bits",
    "sign", "sign_ste", "unpack_bits",
]
