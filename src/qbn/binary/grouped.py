"""Binarize all of a model's binary layers in a few autograd nodes per forward pass.

Why: computed layer by layer, alpha * sign(W) and its STE cost about 17 small kernels (forward
and backward) per layer. On a CPU those, not the arithmetic, made most of a BWN's extra step
time (resnet20 on 2 cores, BWN/FP: 1.06-1.13 per layer, 1.00-1.05 grouped; measured by
experiments/bench/step_time.py, see experiments/one_seed_runs.md).
Layers whose weights have the same fan-in n are concatenated into one C x n matrix (C output
channels in all) and binarized by one node, with the same values and gradients as the per-layer
path (tests/test_grouped.py checks them bit for bit).

How: `group_binarization(model)` (which `binarize` calls) adds a forward pre-hook that, while
gradients are on, computes the effective weight of every eligible layer (no kernel codebook or learned
patterns, no fixed signs) and hands each layer its own; the layer takes it once, in that same forward pass, and
a forward hook drops what no layer took. Anywhere else (no_grad evaluation, callbacks reading a
layer, export) each layer computes its own weight as before.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import BINARY_LAYERS
from .ste import clip_mask, sign


class _GroupBinarize(torch.autograd.Function):
    """alpha * sign(W) with the STE for k layers of equal fan-in n, as one C x n matrix.

    The same operations, in the same order, as autograd runs for the per-layer path, so values
    and gradients agree bit for bit; the clip mask reuses the |W| buffer alpha needs.
    """

    @staticmethod
    def forward(ctx, mode: str, clipped: bool, rows: tuple[int, ...], *tensors: torch.Tensor):
        k = len(rows)
        weights, given = tensors[:k], tensors[k:]
        n = weights[0].shape[1:].numel()
        if k == 1:
            w = weights[0].reshape(rows[0], n)
        else:
            w = torch.cat([t.reshape(r, n) for t, r in zip(weights, rows, strict=True)])
        b = sign(w)
        inside = None
        if mode == "xnor":
            magnitude = w.abs()
            alpha = magnitude.mean(dim=1, keepdim=True)
            inside = magnitude.le_(1) if clipped else None  # the clip mask, in the buffer |W| used
        elif mode == "given":
            alpha = torch.cat([a.reshape(r, 1) for a, r in zip(given, rows, strict=True)])
        else:
            alpha = None
        out = b if alpha is None else alpha * b
        ctx.save_for_backward(w, b, alpha, inside)
        ctx.mode, ctx.clipped, ctx.rows = mode, clipped, rows
        ctx.weight_shapes = [t.shape for t in weights]
        ctx.alpha_shapes = [a.shape for a in given]
        return tuple(o.view(s) for o, s in zip(out.split(rows), ctx.weight_shapes, strict=True))

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        w, b, alpha, inside = ctx.saved_tensors
        k, n = len(ctx.rows), w.shape[1]
        if k == 1:
            g = grads[0].reshape(w.shape)
        else:
            g = torch.cat([gr.reshape(r, n) for gr, r in zip(grads, ctx.rows, strict=True)])
        alpha_grad_needed = ctx.mode == "given" and any(ctx.needs_input_grad[3 + k:])
        if ctx.clipped and inside is None:
            inside = clip_mask(w)
        # Buffers are reused where the per-layer path would allocate: fewer page faults, same values.
        grad_alpha = spare = None
        if ctx.mode == "xnor" or alpha_grad_needed:
            spare = g * b
            grad_alpha = spare.sum(dim=1, keepdim=True)
        if alpha is None:
            grad_w = g * inside if ctx.clipped else g
        else:
            grad_w = torch.mul(g, alpha, out=spare) if spare is not None else g * alpha
            if ctx.clipped:
                grad_w.mul_(inside)
        if ctx.mode == "xnor":
            # d mean|W_o| / dW_oj = sign(W_oj) / n, with torch's sign(0) = 0 as autograd's abs has.
            sign_w = torch.sign(w, out=g) if k > 1 else torch.sign(w)  # g: this node's own concatenation
            grad_w.addcmul_(sign_w, grad_alpha / n)
        grad_weights = [gw.view(s) for gw, s in zip(grad_w.split(ctx.rows), ctx.weight_shapes, strict=True)]
        if ctx.mode != "given":
            grad_given: list[torch.Tensor | None] = []
        elif alpha_grad_needed:
            grad_given = [ga.view(s) for ga, s in zip(grad_alpha.split(ctx.rows), ctx.alpha_shapes, strict=True)]
        else:
            grad_given = [None] * k
        return (None, None, None, *grad_weights, *grad_given)


# Layers this large binarize alone: concatenating them would add two passes over their weights
# and save no kernel launches worth having.
ALONE_FROM = 1 << 17


def _eligible(layer: nn.Module) -> bool:
    return layer.codebook is None and layer.patterns is None and layer.fixed_signs is None


def _binarize_groups(model: nn.Module, args) -> None:
    """Forward pre-hook: the effective weights of all eligible binary layers, a node per group."""
    # Under torch.compile the layers binarize their own weights: inductor fuses each layer's few
    # operations into a kernel or two, so grouping would save nothing, and the hand-over through the
    # layers' __dict__ would break the graph at every layer (dynamo cannot follow it). The compiled
    # flag counts too: nn.Module.compile leaves this hook a frame of its own, which dynamo runs eagerly
    # once it found no tensor operation in it, and there is_compiling() is False. (Inline: a helper
    # called from that eager frame would be one more frame for dynamo to look at on every pass.)
    if not torch.is_grad_enabled() or torch.compiler.is_compiling() or model.__dict__.get("_compiled_call_impl"):
        return
    groups: dict[tuple, list[nn.Module]] = {}
    for layer in model.modules():
        if isinstance(layer, BINARY_LAYERS) and _eligible(layer):
            w = layer.weight
            # Where alpha comes from: none (alpha = 1), xnor (mean |W_o|, with its gradient to W),
            # else given by the layer's scaling module (learnable Parameter, lq buffer).
            mode = layer.scaling_name if layer.scaling_name in ("none", "xnor") else "given"
            key = (mode, layer.ste == "clipped", w.shape[1:].numel(), w.dtype, w.device)
            groups.setdefault(key + ((id(layer),) if w.numel() >= ALONE_FROM else ()), []).append(layer)
    handed: list[nn.Module] = []
    for (mode, clipped, *_), layers in groups.items():
        # alpha() of a given scaling runs here, once per forward as in the per-layer path (lq updates).
        given = [layer.alpha() for layer in layers] if mode == "given" else []
        rows = tuple(layer.weight.shape[0] for layer in layers)
        outs = _GroupBinarize.apply(mode, clipped, rows, *(layer.weight for layer in layers), *given)
        for layer, out in zip(layers, outs, strict=True):
            layer.__dict__["_grouped_weight"] = (out, layer.weight._version)
        handed += layers
    model.__dict__["_grouped_layers"] = handed


def _drop_untaken(model: nn.Module, args, output) -> None:
    """Forward hook: a weight no layer took in this pass must not outlive it (its graph is this pass's)."""
    for layer in model.__dict__.pop("_grouped_layers", ()):
        layer.__dict__.pop("_grouped_weight", None)


def group_binarization(model: nn.Module) -> nn.Module:
    """Make `model` binarize its binary layers in groups during forward passes (idempotent)."""
    if not is_grouped(model):
        model.register_forward_pre_hook(_binarize_groups)
        model.register_forward_hook(_drop_untaken, always_call=True)
    return model


def is_grouped(model: nn.Module) -> bool:
    return _binarize_groups in model._forward_pre_hooks.values()
