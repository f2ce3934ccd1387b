"""Grouped binarization (qbn.binary.grouped) gives the per-layer path's numbers, bit for bit."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import qbn.binary.grouped as grouped_module
from qbn.binary import binary_layers, is_grouped
from qbn.testing.runs import grouped_and_per_layer


def _node_names(out: torch.Tensor) -> set[str]:
    seen, names, todo = set(), set(), [out.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        todo += [nxt for nxt, _ in fn.next_functions]
    return names


def _step(net, x, y):
    net.zero_grad(set_to_none=True)
    out = net(x)
    F.cross_entropy(out, y).backward()
    return out.detach(), {n: p.grad for n, p in net.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("alone", [False, True], ids=["grouped", "each-alone"])
@pytest.mark.parametrize("ste", ["clipped", "identity"])
@pytest.mark.parametrize("scaling", ["none", "xnor", "learnable", "lq"])
def test_grouped_equals_per_layer(scaling, ste, alone, monkeypatch):
    if alone:  # large layers binarize alone, without concatenation
        monkeypatch.setattr(grouped_module, "ALONE_FROM", 0)
    grouped, per_layer = grouped_and_per_layer(scaling, ste)
    assert is_grouped(grouped) and not is_grouped(per_layer)
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    assert "_GroupBinarizeBackward" in _node_names(grouped(x))
    assert "_GroupBinarizeBackward" not in _node_names(per_layer(x))
    for _ in range(2):  # twice: lq's moving average moves the same way in both
        out_g, grads_g = _step(grouped, x, y)
        out_p, grads_p = _step(per_layer, x, y)
        assert torch.equal(out_g, out_p)
        assert grads_g.keys() == grads_p.keys()
        for name in grads_p:
            assert torch.equal(grads_g[name], grads_p[name]), name
    for (name, a), b in zip(binary_layers(grouped).items(), binary_layers(per_layer).values(), strict=True):
        assert torch.equal(a.effective_weight(), b.effective_weight()), name
        if scaling == "lq":
            assert torch.equal(a.scaling.alpha, b.scaling.alpha), name


def test_fixed_signs_and_codebook_layers_binarize_themselves():
    grouped, per_layer = grouped_and_per_layer("xnor", "clipped")
    for net in (grouped, per_layer):
        layers = list(binary_layers(net).values())
        layers[0].fix_signs(torch.ones_like(layers[0].weight, dtype=torch.bool))
        layers[1].fix_signs(layers[1].weight > 0.5, mask=layers[1].weight.abs() > 2)
        layers[2].set_codebook(torch.tensor([0, 511, 7, 448]))
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    out_g, grads_g = _step(grouped, x, y)
    out_p, grads_p = _step(per_layer, x, y)
    assert torch.equal(out_g, out_p)
    for name in grads_p:
        assert torch.equal(grads_g[name], grads_p[name]), name


def test_a_handed_weight_is_used_once_and_never_stale():
    grouped, _ = grouped_and_per_layer("xnor", "clipped")
    layer = next(iter(binary_layers(grouped).values()))
    x = torch.randn(2, 3, 16, 16)
    grouped(x)
    assert "_grouped_weight" not in layer.__dict__  # taken in the pass, or dropped after it
    # A weight handed out but not taken (the layer skipped) is dropped when the pass ends.
    layer.__dict__["_grouped_weight"] = (torch.zeros_like(layer.weight), layer.weight._version)
    grouped.__dict__["_grouped_layers"] = [layer]
    grouped._forward_hooks[next(iter(grouped._forward_hooks))](grouped, (x,), None)
    assert "_grouped_weight" not in layer.__dict__
    # One from before an optimizer step is never used: the latent weight's version moved on.
    layer.__dict__["_grouped_weight"] = (torch.zeros_like(layer.weight), layer.weight._version)
    with torch.no_grad():
        layer.weight.add_(0.0)
    w_hat = layer.effective_weight()
    assert torch.equal(w_hat, layer.scaling(layer.weight) * torch.where(layer.weight >= 0, 1.0, -1.0))


def test_gradient_accumulation_and_no_grad_eval():
    grouped, per_layer = grouped_and_per_layer("learnable", "clipped")
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    for net in (grouped, per_layer):
        net.zero_grad()
        for _ in range(2):  # two backward passes before a step
            F.cross_entropy(net(x), y).backward()
    for (name, a), b in zip(grouped.named_parameters(), per_layer.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name
    grouped.eval(), per_layer.eval()
    with torch.no_grad():
        assert torch.equal(grouped(x), per_layer(x))


def test_grouping_is_idempotent_and_survives_copies():
    grouped, _ = grouped_and_per_layer("xnor", "clipped")
    hooks = len(grouped._forward_pre_hooks)
    from qbn.binary import group_binarization

    group_binarization(grouped)
    assert len(grouped._forward_pre_hooks) == hooks
    twin = copy.deepcopy(grouped)
    x, y = torch.randn(2, 3, 16, 16), torch.randint(0, 10, (2,))
    out_a, grads_a = _step(grouped, x, y)
    out_b, grads_b = _step(twin, x, y)
    assert torch.equal(out_a, out_b)
    assert all(torch.equal(grads_a[n], grads_b[n]) for n in grads_a)
