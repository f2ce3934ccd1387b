"""The speed options: channels_last computes what NCHW computes (signs, kernel ids, packed files, logits),
and torch.compile captures every binary layer in one graph that is never recompiled after warm-up."""

from __future__ import annotations

import copy
import time

import pytest
import pytorch_lightning as pl
import torch
import torch._dynamo
import torch.nn.functional as F
from torch._dynamo.utils import counters

from qbn.binary import binary_layers
from qbn.binary.kernel_mapping import _nearest_codeword, kernel_ids, map_to_codebook
from qbn.build import build_datamodule
from qbn.errors import ConfigError
from qbn.export import export_module
from qbn.module import build_module
from qbn.schema import check_config
from qbn.signs import load_snapshot, model_signs, save_snapshot
from qbn.speed import compile_options, use_channels_last
from qbn.testing.runs import TINY, compose_cfg, grouped_and_per_layer, run_cli
from qbn.train import train

MODELS = ["resnet20", "resnet32", "resnet56", "resnet18", "resnet34", "vgg_small"]
SMOKE = [*TINY, "dataset=digits", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]


def test_speed_options_are_checked_and_resolved(cfg_factory):
    for override in ("compile=fast", "compile=1", "channels_last=yes"):
        with pytest.raises(ConfigError, match=override.split("=")[0]):
            check_config(cfg_factory(override))
    for override in ("compile=true", "compile=max-autotune", "compile=aot_eager", "channels_last=false"):
        check_config(cfg_factory(override))
    assert compile_options(False) is None and compile_options(True) == {}
    assert compile_options("max-autotune") == {"mode": "max-autotune"}
    assert compile_options("eager") == {"backend": "eager"}
    assert use_channels_last("auto", "cpu") and not use_channels_last("auto", "gpu") and use_channels_last(True, "gpu")
    assert build_module(cfg_factory("dataset=digits", "trainer.accelerator=cpu")).channels_last  # the default: auto


def test_nearest_codeword_under_compile_equals_map_to_codebook():
    """The dense form compile uses picks the codeword map_to_codebook picks, ties and own patterns included."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(40, 6, 3, 3, generator=g)
    w[:5, :, 1, 1] = 0.0  # exact ties between codewords that differ in the centre
    for n in (1, 3, 6, 9):
        book = torch.randperm(512, generator=g)[:2 ** n]
        book[0] = kernel_ids(w[:1, :1] >= 0).item()  # some kernels' own pattern is a codeword
        flat = w.reshape(-1, 9)
        dense = _nearest_codeword(flat, book, 1e-5 * flat.abs().sum(dim=1)).view(40, 6)
        assert torch.equal(dense, map_to_codebook(w, book))
        # the definition, one kernel at a time: the first codeword of the highest <w, c> (within the tie tolerance)
        codes = [(((book[j] >> torch.arange(9)) & 1) * 2 - 1).float() for j in range(book.numel())]
        for row in range(0, flat.shape[0], 37):
            scores = [float(flat[row] @ c) for c in codes]
            tol = 1e-5 * float(flat[row].abs().sum())
            first = next(j for j, s in enumerate(scores) if s >= max(scores) - tol)
            assert dense.view(-1)[row] == first


def _variant_module(cfg_factory, *overrides: str):
    """(module, cfg): a resnet20 BWN on digits in NCHW with fixed signs in layer1.0 and a QBN codebook in
    layer3.1 beside grouped layers, latent weights spread past +-1 so clipping matters."""
    cfg = cfg_factory("dataset=digits", "channels_last=false", *overrides)
    module = build_module(cfg)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.net.parameters():
            p.mul_(torch.empty_like(p).uniform_(0.5, 4.0))
    for name, layer in binary_layers(module.net).items():
        if name.startswith("layer1.0"):
            layer.fix_signs(torch.rand(layer.weight.shape) > 0.5)
        elif name.startswith("layer3.1") and layer.weight.shape[-1] == 3:
            layer.set_codebook(torch.arange(16) * 31)
    return module, cfg


@pytest.mark.parametrize("variant", ["scaling=none", "scaling=xnor", "scaling=learnable", "scaling=lq", "binary=fp"])
def test_channels_last_computes_what_nchw_computes(cfg_factory, tmp_path, variant):
    nchw, cfg = _variant_module(cfg_factory, variant)
    last = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    last.channels_last = True
    assert last.net.layer1[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    # what the instruments and export read from the weights: signs, kernel ids, snapshots, the packed file
    a, b = model_signs(nchw.net), model_signs(last.net)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a) and (variant == "binary=fp") == (not a)
    assert all(torch.equal(kernel_ids(a[k]), kernel_ids(b[k])) for k in a if a[k].dim() == 4 and a[k].shape[-1] == 3)
    sa, sb = save_snapshot(tmp_path / "a.pt", a, 0), save_snapshot(tmp_path / "b.pt", b, 0)
    assert all(torch.equal(x, y) for x, y in zip(load_snapshot(sa).values(), load_snapshot(sb).values(), strict=True))
    assert export_module(nchw, cfg) == export_module(last, cfg)
    # a few logits, and a training step's gradients (float rounding differs between the layouts)
    x = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    with torch.no_grad():
        # eval with untrained BN stats: logits up to ~1e21 for scaling=none
        torch.testing.assert_close(last.eval()(x), nchw.eval()(x), rtol=1e-3, atol=1e-4)
    y = torch.arange(6)
    for m in (nchw.train(), last.train()):
        F.cross_entropy(m(x), y).backward()
    for (name, p), q in zip(nchw.named_parameters(), last.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-4, msg=name)


def _steps(net, x, y, train_steps: int, eval_steps: int) -> None:
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    for _ in range(train_steps):
        net.train()
        F.cross_entropy(net(x), y).backward()
        opt.step()
        opt.zero_grad()
    net.eval()
    with torch.no_grad():
        for _ in range(eval_steps):
            net(x)


# every scaling is slow (seconds each under dynamo); CI's slow step runs lq, the likeliest to recompile
# (its alpha is a buffer the forward pass updates), and compiled training of resnet20 with xnor
@pytest.mark.slow
@pytest.mark.parametrize("scaling", ["none", "xnor", "learnable", "lq"])
def test_dynamo_takes_every_binary_layer_in_one_graph_without_recompiles(cfg_factory, scaling):
    """Grouped layers, fixed signs and a QBN codebook side by side: no graph break, and after one
    training and one evaluation pass (the warm-up) nothing is compiled again (dynamo alone: fast)."""
    net = _variant_module(cfg_factory, f"scaling={scaling}")[0].net
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    torch._dynamo.reset()
    counters.clear()
    net.compile(backend="eager")
    _steps(net, x, y, 1, 1)
    frames, graphs = counters["frames"]["total"], counters["stats"]["unique_graphs"]
    assert graphs > 0 and not counters["graph_break"], dict(counters["graph_break"])
    _steps(net, x, y, 3, 2)
    qbn_layer = net.layer3[1].conv1
    qbn_layer.set_codebook(torch.arange(16) * 29 + 3)  # QBN's callback refreshes codebooks: same size, new ids
    _steps(net, x, y, 2, 1)
    seen = (counters["frames"]["total"], counters["stats"]["unique_graphs"])
    assert seen == (frames, graphs), "recompiled after warm-up"
    assert not counters["graph_break"]


@pytest.mark.slow
def test_compiled_layers_compute_what_eager_layers_compute():
    """Same values and gradients compiled (inductor) as in eager, grouped or not (float rounding aside)."""
    grouped, per_layer = grouped_and_per_layer("xnor", "clipped", image_size=8)
    compiled = copy.deepcopy(grouped)
    torch._dynamo.reset()
    compiled.compile()
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    outs = []
    for net in (per_layer, grouped, compiled):
        net.zero_grad()
        out = net(x)
        F.cross_entropy(out, y).backward()
        outs.append((out.detach(), [p.grad for p in net.parameters()]))
    for out, grads in outs[1:]:
        torch.testing.assert_close(out, outs[0][0], rtol=1e-4, atol=1e-4)
        for g, g0 in zip(grads, outs[0][1], strict=True):
            torch.testing.assert_close(g, g0, rtol=1e-3, atol=1e-4)


class _Warm(pl.Callback):
    """Counts what dynamo compiles after the first epoch (the warm-up: a training and a validation pass)."""

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            self.frames = counters["frames"]["total"], counters["stats"]["unique_graphs"]


@pytest.mark.slow  # a subprocess or a whole report (seconds); CI's slow step runs it
def test_compiled_training_does_not_recompile(cfg_factory):
    """compile=true (inductor) through Lightning: after the first epoch, nothing compiles again; no graph break."""
    cfg = cfg_factory(*SMOKE, "compile=true", "trainer.max_epochs=2")
    module = build_module(cfg)
    torch._dynamo.reset()
    counters.clear()
    warm = _Warm()
    trainer = pl.Trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=1, logger=False, accelerator="cpu",
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[warm], num_sanity_val_steps=0)
    t = time.perf_counter()
    trainer.fit(module, datamodule=build_datamodule(cfg))
    print(f"compiled resnet20 smoke fit: {time.perf_counter() - t:.0f} s")
    assert (counters["frames"]["total"], counters["stats"]["unique_graphs"]) == warm.frames, "recompiled after warm-up"
    assert warm.frames[1] > 0
    assert not counters["graph_break"], dict(counters["graph_break"])


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_every_model_trains_compiled(tmp_path, model):
    """python -m qbn.train compile=true, every model of conf/model/, at smoke size (minutes each on 2 cores)."""
    r = run_cli("qbn.train", *SMOKE, f"model={model}", "compile=true", f"hydra.run.dir={tmp_path / model}")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = tmp_path / model / "summary.json"
    assert summary.exists() and '"completed"' in summary.read_text()


def test_compiled_run_is_a_run_of_the_same_settings(cfg_factory, tmp_path):
    """compile and channels_last change how a step is computed, not what: a completed run met again with
    other values is skipped, not refused."""
    run = tmp_path / "r"
    first = train(compose_cfg(run, [*SMOKE, "trainer.max_epochs=1", "channels_last=false"]))
    again = train(compose_cfg(run, [*SMOKE, "trainer.max_epochs=1", "channels_last=true", "compile=true"]))
    assert again == first
