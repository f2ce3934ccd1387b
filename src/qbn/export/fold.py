"""BatchNorm folding: which BN directly follows which conv, and the folded scale and shift.

BN(conv(x)) = s * conv(x) + (beta - s * mean) with s = gamma / sqrt(var + eps), so a binary
layer's alpha becomes alpha * s and a full-precision conv's weight W * s, each with a bias.
Pairs are found by tracing the full-precision backbone with torch.fx (no name guessing).
"""

from __future__ import annotations

import torch
from torch import fx, nn

from ..errors import QbnError


def conv_bn_pairs(net: nn.Module) -> dict[str, str]:
    """{conv name: bn name} where a BatchNorm2d takes a Conv2d's output and nothing else uses it."""
    class _Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return (isinstance(m, (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm))
                    or super().is_leaf_module(m, qualname))

    try:
        graph = _Tracer().trace(net)
    except Exception as e:  # noqa: BLE001  fx fails in many ways on dynamic code
        raise QbnError("--fold-bn: cannot trace this backbone to find conv -> BatchNorm pairs "
                       f"({type(e).__name__})") from None
    modules = dict(net.named_modules())
    pairs = {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0] if node.args else None
        if (isinstance(src, fx.Node) and src.op == "call_module" and isinstance(modules.get(src.target), nn.Conv2d)
                and len(src.users) == 1):
            bn = modules[node.target]
            if bn.track_running_stats and bn.running_mean is not None:
                pairs[src.target] = node.target
    return pairs


@torch.no_grad()
def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, t) with BN(y) = s * y + t per channel in eval mode (computed in float64)."""
    var, mean = bn.running_var.double(), bn.running_mean.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    s = gamma / torch.sqrt(var + bn.eps)
    return s, beta - s * mean
