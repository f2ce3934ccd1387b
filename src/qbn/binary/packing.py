"""Bit packing shared by sign snapshots and the packed model file.

Bit order (documented, tested against a hand-packed example): the flattened tensor is cut into
bytes of 8 consecutive elements; element 8*i + j goes to bit j of byte i (least significant bit
first, numpy's bitorder='little'). The last byte is zero-padded.
"""

from __future__ import annotations

import torch

_WEIGHTS = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8)


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """Pack a bool tensor (any shape) into a flat uint8 tensor of ceil(numel / 8) bytes."""
    flat = bits.reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return (flat.view(-1, 8) * _WEIGHTS.to(flat.device)).sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """Inverse of pack_bits: the first `numel` bits as a flat bool tensor."""
    if packed.dtype != torch.uint8 or packed.dim() != 1 or packed.numel() * 8 < numel:
        raise ValueError(f"packed bits: need a flat uint8 tensor of at least {(numel + 7) // 8} bytes")
    bits = (packed.unsqueeze(1) & _WEIGHTS.to(packed.device)) != 0
    return bits.reshape(-1)[:numel]
