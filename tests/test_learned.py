"""Learned codebooks (qbn.method=learned) and distillation: each formula against a direct loop over
a small tensor, the freeze, re-seeding, checkpoints and packing (fast, in process)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from qbn.binary import BinaryConv2d
from qbn.binary.kernel_mapping import learned_ste, pattern_ids
from qbn.build import build_callbacks
from qbn.callbacks.codebook import drop_param_groups
from qbn.errors import QbnError
from qbn.export import export_module, load_bytes
from qbn.kernels import CodebookError, ids_to_kernels, kernel_ids, select_codebook
from qbn.kernels.learned import duplicate_rows, freeze_patterns, init_patterns, reseed_duplicates
from qbn.kernels.quantize import QBNSettings, latent_histogram, quantizable_layers, quantize
from qbn.losses import distillation_loss
from qbn.schema import check_config
from qbn.testing.export import make_module
from qbn.testing.runs import qbn_settings


def _sign(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t >= 0, 1.0, -1.0)


def _patterns(k: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    p = (torch.rand(k, 3, 3, generator=g) - 0.5) * 3   # some entries beyond +-1: the clip matters
    p[k - 1] = p[0].abs() * _sign(p[0])                 # a duplicate of pattern 0's signs (never chosen)
    return p.requires_grad_(True)


def _weight(o: int = 3, i: int = 4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return ((torch.rand(o, i, 3, 3, generator=g) - 0.5) * 3).requires_grad_(True)


def _nearest_by_loop(w: torch.Tensor, p: torch.Tensor) -> list[list[int]]:
    """For each kernel, the first pattern maximising <w, sign(p)>, by a plain double loop."""
    best = []
    for o in range(w.shape[0]):
        row = []
        for i in range(w.shape[1]):
            scores = [float((w[o, i] * _sign(p[k])).sum()) for k in range(p.shape[0])]
            row.append(max(range(len(scores)), key=lambda k: (scores[k], -k)))
        best.append(row)
    return best


def test_learned_forward_is_the_nearest_pattern():
    w, p = _weight(), _patterns()
    out = learned_ste(w, p, "clipped")
    best = _nearest_by_loop(w.detach(), p.detach())
    for o in range(w.shape[0]):
        for i in range(w.shape[1]):
            assert torch.equal(out[o, i], _sign(p[best[o][i]].detach()))
    assert 3 not in {k for row in best for k in row}   # the duplicate of pattern 0 loses every tie
    # the nearest pattern by <w, sign(p)> is the one nearest to w in L2 among the +-1 kernels
    k, w, p = best[0][0], w.detach(), p.detach()
    dists = [float(((w[0, 0] - _sign(p[j])) ** 2).sum()) for j in range(p.shape[0])]
    assert dists[k] == pytest.approx(min(dists))


@pytest.mark.parametrize("ste", ["clipped", "identity"])
def test_gradients_reach_the_patterns_and_the_latent_weights(ste):
    w, p = _weight(), _patterns()
    g = torch.randn(w.shape, generator=torch.Generator().manual_seed(2))
    (learned_ste(w, p, ste) * g).sum().backward()
    best = _nearest_by_loop(w.detach(), p.detach())
    expected_p = torch.zeros_like(p)
    for o in range(w.shape[0]):
        for i in range(w.shape[1]):
            expected_p[best[o][i]] += g[o, i]
    expected_w = g.clone()
    if ste == "clipped":
        expected_p = expected_p * (p.detach().abs() <= 1)
        expected_w = expected_w * (w.detach().abs() <= 1)
    assert p.grad.abs().sum() > 0 and w.grad.abs().sum() > 0
    torch.testing.assert_close(p.grad, expected_p)
    torch.testing.assert_close(w.grad, expected_w)


def test_freezing_a_layer_keeps_its_forward():
    torch.manual_seed(0)
    layer = BinaryConv2d(4, 3, 3, padding=1)
    layer.set_patterns(torch.nn.Parameter(_patterns().detach()))
    x = torch.randn(2, 4, 5, 5)
    before = layer(x).detach()
    ids = pattern_ids(layer.patterns)
    layer.freeze_patterns()
    assert layer.patterns is None and torch.equal(layer.codebook, ids)
    assert torch.equal(layer(x).detach(), before)
    assert torch.equal(ids, kernel_ids(_sign(_patterns().detach()).unsqueeze(0)).view(-1))


def test_duplicate_rows_and_reseeding_by_loop():
    assert duplicate_rows(torch.tensor([5, 7, 5, 9, 7, 5])).tolist() == [2, 4, 5]
    torch.manual_seed(0)
    layer = BinaryConv2d(6, 8, 3, padding=1)
    p = _patterns().detach()
    magnitude = float(p.abs().mean())
    layer.set_patterns(torch.nn.Parameter(p.clone()))
    ids = pattern_ids(layer.patterns).tolist()
    hist = latent_histogram(layer).tolist()
    # the most frequent latent id not among the patterns' (equal counts: the lower id)
    want = max((i for i in range(512) if i not in ids), key=lambda i: (hist[i], -i))
    changed = reseed_duplicates({"l": layer})
    assert len(changed) == 1 and changed[0][1].tolist() == [3]
    new = pattern_ids(layer.patterns).tolist()
    assert new[:3] == ids[:3] and new[3] == want and len(set(new)) == 4
    assert torch.allclose(layer.patterns[3].abs(), torch.full((3, 3), magnitude))
    assert reseed_duplicates({"l": layer}) == []


def test_init_topk_random_and_shared_patterns():
    module, _ = make_module()
    layers = quantizable_layers(module.net)
    init_patterns(layers, {k: 3 for k in layers}, init="topk")
    first = next(iter(layers.values()))
    assert torch.equal(pattern_ids(first.patterns), select_codebook(latent_histogram(first), 3))
    assert torch.allclose(first.patterns.abs(), first.weight.detach().abs().mean().expand(8, 3, 3))
    module, _ = make_module()
    layers = quantizable_layers(module.net)
    report = init_patterns(layers, {k: 2 for k in layers}, shared=True, init="random",
                           generator=torch.Generator().manual_seed(0))
    shared = {id(m.patterns) for m in layers.values()}
    assert len(shared) == 1 and len(set(pattern_ids(first_of(layers).patterns).tolist())) == 4
    assert all(e["quantized"] for e in report.values())
    module.pattern_lr = 0.01
    groups = {g["name"]: g for g in module.parameter_groups()}
    assert len(groups["patterns"]["params"]) == 1 and groups["patterns"]["lr"] == 0.01
    assert groups["patterns"]["weight_decay"] == 0.0


def first_of(layers: dict):
    return next(iter(layers.values()))


def test_budget_layers_at_nine_bits_stay_the_bwn():
    module, _ = make_module()
    layers = quantizable_layers(module.net)
    names = list(layers)
    report = init_patterns(layers, {k: (9 if k == names[0] else 2) for k in names})
    assert layers[names[0]].patterns is None and not report[names[0]]["quantized"]
    assert layers[names[1]].patterns.shape == (4, 3, 3)


def test_checkpoint_state_creates_and_drops_patterns():
    module, _ = make_module()
    layers = quantizable_layers(module.net)
    init_patterns(layers, {k: 2 for k in layers})
    learned_state = {k: v.clone() for k, v in module.state_dict().items()}
    fresh, _ = make_module()
    fresh.load_state_dict(learned_state)
    assert all(m.patterns is not None for m in quantizable_layers(fresh.net).values())
    freeze_patterns(layers)
    fresh.load_state_dict(module.state_dict())   # a frozen state: codebooks, no patterns
    assert all(m.patterns is None and m.codebook is not None for m in quantizable_layers(fresh.net).values())


def test_packing_unfrozen_patterns_freezes_a_copy_exactly():
    module, cfg = make_module()
    layers = quantizable_layers(module.net)
    init_patterns(layers, {k: 3 for k in layers})
    with torch.no_grad():   # patterns moved off their start, one duplicated (the file stores it once)
        for m in layers.values():
            m.patterns.mul_(torch.randn(m.patterns.shape, generator=torch.Generator().manual_seed(3)))
            m.patterns[1] = m.patterns[0]
    buf = export_module(module, cfg)
    assert all(m.patterns is not None for m in layers.values())   # the live module is left as it was
    x = torch.rand(32, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(load_bytes(buf)(x), module(x), rtol=1e-5, atol=1e-5)


def test_distillation_loss_equals_its_formula():
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = torch.tensor([[0.2, 3.0, -1.0], [1.0, 1.0, 2.0]])
    y = torch.tensor([1, 0])
    w, temp = 0.3, 2.0
    ce = kl = 0.0
    for b in range(2):
        zs = [float(v) for v in s[b]]
        ce += -(zs[y[b]] - torch.logsumexp(s[b], 0).item()) / 2
        ps = torch.softmax(t[b] / temp, 0).tolist()
        qs = torch.softmax(s[b] / temp, 0).tolist()
        kl += sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(ps, qs, strict=True)) / 2
    expected = (1 - w) * ce + w * temp ** 2 * kl
    assert float(distillation_loss(s, t, y, w, temp)) == pytest.approx(expected, rel=1e-5)
    assert float(distillation_loss(s, t, y, 0.0, temp)) == pytest.approx(ce, rel=1e-5)


def test_dropping_the_patterns_group_from_optimizer_and_scheduler():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([{"params": [a], "name": "binary"}, {"params": [b], "name": "patterns", "lr": 0.5}], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)
    (a.sum() + b.sum()).backward()
    opt.step()
    sched.step()
    trainer = SimpleNamespace(optimizers=[opt], lr_scheduler_configs=[SimpleNamespace(scheduler=sched)])
    drop_param_groups(trainer, [b])
    assert [g["name"] for g in opt.param_groups] == ["binary"] and b not in opt.state and a in opt.state
    assert sched.base_lrs == [0.1] and len(sched.lr_lambdas) == 1
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    fresh = torch.optim.Adam([{"params": [a], "name": "binary"}], lr=0.1)
    fresh.load_state_dict(opt.state_dict())   # what resuming from a checkpoint saved after the freeze does


@pytest.mark.parametrize("settings, message", [
    ({"bits": 4, "method": "snn"}, "qbn.method='snn' is not valid: choose one of topk, learned"),
    ({"bits": 4, "method": "learned", "progressive": True}, "qbn.progressive"),
    ({"bits": 4, "learned_init": "zeros"}, "choose one of topk, random"),
    ({"bits": 4, "distill": {"weight": 0.5, "temperature": 4.0}}, "qbn.from_ckpt"),
    ({"bits": 4, "from_ckpt": "x", "distill": {"weight": 1.5, "temperature": 4.0}},
     "qbn.distill.weight=1.5 is not valid: it must be a number from 0 to 1"),
    ({"method": "learned"}, "QBN is off"),
])
def test_settings_mistakes_are_one_message(settings, message):
    with pytest.raises(CodebookError, match=message.replace("[", r"\[").replace("]", r"\]")):
        QBNSettings.from_dict(qbn_settings(**settings))


def test_ids_of_patterns_follow_sign_zero_is_plus_one():
    p = torch.zeros(2, 3, 3)
    p[1] = -1
    assert pattern_ids(p).tolist() == [511, 0]
    assert torch.equal(ids_to_kernels(pattern_ids(p)), _sign(p))


def test_config_mistakes_are_one_message(cfg_factory):
    with pytest.raises(QbnError, match="callbacks.distill is off"):
        build_callbacks(cfg_factory("dataset=synthetic", "qbn.bits=5", "qbn.from_ckpt=x", "qbn.distill.weight=0.5",
                                    "callbacks.distill=null"))
    with pytest.raises(QbnError, match="qbn.distill.weight"):
        check_config(cfg_factory("dataset=synthetic", "qbn.bits=5", "qbn.distill.weight=2"))
    with pytest.raises(QbnError, match="qbn.method"):
        check_config(cfg_factory("dataset=synthetic", "qbn.bits=5", "qbn.method=snn"))
    cfg = cfg_factory("dataset=synthetic", "qbn.bits=5", "qbn.method=learned", "qbn.from_ckpt=x",
                      "qbn.distill.weight=0.5")
    check_config(cfg)
    names = {type(c).__name__ for c in build_callbacks(cfg)}
    assert {"QBNCallback", "Distillation"} <= names


def test_learned_patterns_that_never_move_train_exactly_as_topk():
    """With its patterns held still (lr 0), a learned codebook started from the top-2^n kernels is
    topk: same forward, same gradients to every other parameter, so the same weights after steps."""
    topk, _ = make_module()
    learned, _ = make_module()
    quantize(quantizable_layers(topk.net), {k: 3 for k in quantizable_layers(topk.net)})
    init_patterns(quantizable_layers(learned.net), {k: 3 for k in quantizable_layers(learned.net)})
    learned.pattern_lr = 0.0
    x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    y = torch.arange(8) % 4
    for module in (topk, learned):
        module.train()
        opt = torch.optim.Adam(module.parameter_groups(), lr=1e-2)
        for _ in range(3):
            torch.nn.functional.cross_entropy(module(x), y).backward()
            opt.step()
            opt.zero_grad()
    a, b = topk.net.state_dict(), learned.net.state_dict()
    assert set(a) - set(b) == {k for k in a if k.endswith(".codebook")}
    for key in set(a) & set(b):
        assert torch.equal(a[key], b[key]), key
    topk.eval(), learned.eval()
    with torch.no_grad():
        assert torch.equal(topk(x), learned(x))
