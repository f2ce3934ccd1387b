"""QBN on layers and models: codebooks in forward, the STE, n = 9, unchanged layers, bit budget,
checkpoints, and one clear message for each user mistake."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qbn.binary import BinaryConv2d, binary_layers
from qbn.build import build_callbacks
from qbn.callbacks.codebook import QBNCallback, load_bwn
from qbn.errors import CheckpointError, QbnError
from qbn.kernels import histogram, ids_to_kernels, kernel_ids, map_to_codebook, select_codebook
from qbn.kernels.codebook_choice import CodebookError
from qbn.kernels.quantize import (
    QBNSettings,
    latent_histogram,
    model_bits,
    plan_bits,
    progressive_order,
    quantizable_layers,
    quantize,
    refresh,
)
from qbn.module import build_module
from qbn.testing.runs import qbn_settings, write_run_dir


def _layer(o=6, i=5, seed=0) -> BinaryConv2d:
    torch.manual_seed(seed)
    return BinaryConv2d(i, o, 3, padding=1, bias=False)


def _ids_in_codebook(layer) -> bool:
    ids = kernel_ids(layer.signs())
    return bool(torch.isin(ids, layer.codebook).all())


def test_layer_forward_uses_codewords_and_ste():
    layer = _layer()
    book = select_codebook(latent_histogram(layer), 2)
    layer.set_codebook(book)
    b = layer.binary_weight()
    expected = ids_to_kernels(book[map_to_codebook(layer.weight, book)])
    assert torch.equal(b.detach(), expected)
    assert torch.equal(layer.signs(), expected > 0)
    assert torch.equal(layer.codebook_indices(), map_to_codebook(layer.weight, book))
    assert _ids_in_codebook(layer)
    x = torch.randn(2, 5, 6, 6)
    layer(x).square().sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    w = layer.weight.detach()
    assert torch.all(layer.weight.grad[w.abs() > 1] == 0)          # clipped STE, as for the BWN


def test_full_codebook_and_n9_reproduce_the_bwn():
    layer = _layer(seed=1)
    x = torch.randn(2, 5, 6, 6)
    bwn = layer(x).detach()
    layer.set_codebook(select_codebook(latent_histogram(layer), 9))   # all 512 ids
    assert torch.equal(layer(x).detach(), bwn)
    report = quantize({"l": layer}, {"l": 9})
    assert layer.codebook is None and report["l"]["unchanged"] and not report["l"]["quantized"]
    assert torch.equal(layer(x).detach(), bwn)


def test_layer_with_few_distinct_kernels_is_unchanged_and_reported():
    layer = _layer(o=8, i=4, seed=2)
    patterns = ids_to_kernels(torch.tensor([0, 511, 5]))             # 3 distinct kernels <= 2^2
    choice = torch.randint(0, 3, (8, 4))
    with torch.no_grad():
        layer.weight.copy_(patterns[choice] * (torch.rand(8, 4, 3, 3) + 0.1))
    before = layer.signs().clone()
    report = quantize({"l": layer}, {"l": 2})
    assert torch.equal(layer.signs(), before)
    assert report["l"]["unchanged"] and report["l"]["signs_changed"] == 0.0 and "left unchanged" in report["l"]["note"]


def test_kernels_stay_in_codebook_through_optimizer_steps():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    from qbn.binary import BinaryPolicy, binarize

    binarize(net, BinaryPolicy())
    layers = quantizable_layers(net)
    assert len(layers) == 2
    quantize(layers, {k: 3 for k in layers})
    books = {k: m.codebook.clone() for k, m in layers.items()}
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    before = {k: m.weight.detach().clone() for k, m in layers.items()}
    for _ in range(5):
        x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        for k, m in layers.items():
            assert _ids_in_codebook(m) and torch.equal(m.codebook, books[k])
    assert any(not torch.equal(before[k], m.weight) for k, m in layers.items())  # the latent weights trained


def test_refresh_recounts_from_latent_kernels():
    layer = _layer(o=8, i=8, seed=3)
    quantize({"l": layer}, {"l": 2})
    with torch.no_grad():
        layer.weight.copy_(ids_to_kernels(torch.full((8, 8), 7)) * 0.5)   # every latent kernel is now id 7
    refresh({"l": layer})
    assert layer.codebook[0].item() == 7 and layer.codebook.numel() == 4


def test_shared_codebook_is_one_for_all_layers():
    a, b = _layer(seed=4), _layer(seed=5)
    quantize({"a": a, "b": b}, {"a": 3, "b": 3}, shared=True)
    total = latent_histogram(a) + latent_histogram(b)
    assert torch.equal(a.codebook, b.codebook) and torch.equal(a.codebook, select_codebook(total, 3))


def test_fixed_signs_and_codebook_rejected():
    layer = _layer()
    layer.fix_signs(layer.weight >= 0)
    with pytest.raises(ValueError, match="cannot be combined"):
        layer.set_codebook(torch.arange(4))
    with pytest.raises(CodebookError, match="fixed"):
        quantize({"l": layer}, {"l": 2})
    other = _layer()
    other.set_codebook(torch.arange(4))
    with pytest.raises(ValueError, match="cannot be combined"):
        other.fix_signs(other.weight >= 0)


def test_non_3x3_layer_rejected():
    one = BinaryConv2d(4, 4, 1)
    with pytest.raises(ValueError, match="only 3x3"):
        one.set_codebook(torch.arange(4))
    assert one.codebook is None


# ---- models and configs --------------------------------------------------------------------

def test_settings_messages():
    for bad, match in (({"bits": 0}, "from 1 to 9"), ({"bits": 10}, "from 1 to 9"),
                       ({"bits": 3, "budget": 0.5}, "not both"),
                       ({"bits": 3, "codebook": "global"}, "choose one of per_layer, shared"),
                       ({"budget": 0.5, "codebook": "shared"}, "per_layer"), ({"layers": ["a"]}, "QBN is off"),
                       ({"from_ckpt": "x"}, "QBN is off"), ({"bits": 5, "from_ckpt": "???"}, "required")):
        with pytest.raises(CodebookError, match=match):
            QBNSettings.from_dict(qbn_settings(**bad))
    assert not QBNSettings.from_dict(qbn_settings()).enabled and QBNSettings.from_dict(qbn_settings(bits=9)).enabled
    with pytest.raises(CodebookError, match="qbn.method is missing"):   # no defaults of its own: conf/qbn/ has them
        QBNSettings.from_dict({k: v for k, v in qbn_settings().items() if k != "method"})


def test_config_group_default_is_off_and_bits_turns_on(cfg_factory):
    """The QBN callback is always in the config (callbacks.codebook, kept by callbacks=none too) and
    acts only when qbn.bits or qbn.budget is set; a bad setting is one clear message."""
    for callbacks in ("default", "none"):
        (cb,) = [c for c in build_callbacks(cfg_factory("dataset=synthetic", f"callbacks={callbacks}"))
                 if isinstance(c, QBNCallback)]
        assert not cb.settings.enabled
    (cb,) = [c for c in build_callbacks(cfg_factory("dataset=synthetic", "qbn.bits=5")) if isinstance(c, QBNCallback)]
    assert cb.settings.bits == 5 and cb.settings.enabled
    with pytest.raises(QbnError, match="from 1 to 9"):
        build_callbacks(cfg_factory("dataset=synthetic", "qbn.bits=12"))
    with pytest.raises(QbnError, match="callbacks.codebook is off"):
        build_callbacks(cfg_factory("dataset=synthetic", "qbn.bits=5", "callbacks.codebook=null"))


def test_named_layers_checked():
    net = nn.Sequential(BinaryConv2d(2, 4, 3), BinaryConv2d(4, 4, 1))
    assert list(quantizable_layers(net, ["0"])) == ["0"]
    with pytest.raises(CodebookError, match="only 3x3 binary convs"):
        quantizable_layers(net, ["1"])
    with pytest.raises(CodebookError, match="not a binary layer"):
        quantizable_layers(net, ["fc"])


def test_budget_mode_meets_budget_on_a_model(cfg_factory):
    module = build_module(cfg_factory("dataset=synthetic", "model.backbone.shortcut=B"))
    layers = quantizable_layers(module.net)
    assert len(binary_layers(module.net)) > len(layers)           # 1x1 shortcuts stay at 1 bit per weight
    for budget in (0.9, 0.6, 0.4):
        bits = plan_bits(QBNSettings.from_dict(qbn_settings(budget=budget)), module.net, layers)
        acc = model_bits(module.net, bits)
        assert acc["bits_per_weight"] <= budget
        assert all(1 <= n <= 9 for n in bits.values())
    with pytest.raises(CodebookError, match="smallest codebooks allow"):
        plan_bits(QBNSettings.from_dict(qbn_settings(budget=0.01)), module.net, layers)


def test_bits_per_weight_direct_count(cfg_factory):
    module = build_module(cfg_factory("dataset=synthetic"))
    layers = quantizable_layers(module.net)
    bits = {k: 5 for k in layers}
    acc = model_bits(module.net, bits)
    direct = sum(5 * m.weight.shape[0] * m.weight.shape[1] + 9 * 32 for m in layers.values())
    assert acc["binary_bits"] == direct
    assert acc["bits_per_weight"] == pytest.approx(direct / sum(m.weight.numel() for m in layers.values()))


def test_progressive_order():
    net = nn.Sequential(BinaryConv2d(2, 4, 3), BinaryConv2d(4, 4, 3), BinaryConv2d(4, 4, 3))
    layers = quantizable_layers(net)
    assert progressive_order(layers, "deepest_first") == ["2", "1", "0"]
    assert progressive_order(layers, "shallowest_first") == ["0", "1", "2"]


def test_qbn_checkpoint_reloads_to_same_predictions(cfg_factory, tmp_path):
    cfg = cfg_factory("dataset=synthetic")
    module = build_module(cfg).eval()
    layers = quantizable_layers(module.net)
    quantize(layers, {k: 3 for k in layers})
    x = torch.rand(4, 1, 16, 16)
    with torch.no_grad():
        before = module(x)
    torch.save({"state_dict": module.state_dict()}, tmp_path / "q.ckpt")
    fresh = build_module(cfg).eval()
    fresh.load_state_dict(torch.load(tmp_path / "q.ckpt", weights_only=True)["state_dict"])
    assert all(m.codebook is not None for m in quantizable_layers(fresh.net).values())
    with torch.no_grad():
        assert torch.equal(fresh(x), before)


def test_non_bwn_checkpoint_is_one_clear_message(cfg_factory, tmp_path):
    fp_cfg = cfg_factory("dataset=synthetic", "binary=fp", run_dir=tmp_path / "fp")
    write_run_dir(tmp_path / "fp", fp_cfg, build_module(fp_cfg))
    bwn = build_module(cfg_factory("dataset=synthetic"))
    with pytest.raises(CheckpointError, match="not a BWN"):
        load_bwn(bwn, str(tmp_path / "fp"))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_bwn(bwn, str(tmp_path / "nothing.ckpt"))


def test_kernel_stats_from_checkpoint_snapshot_and_model(cfg_factory, tmp_path):
    from qbn.kernels.read_signs import load_kernel_signs
    from qbn.signs import model_signs, save_snapshot, snapshot_path

    cfg = cfg_factory("dataset=synthetic", run_dir=tmp_path / "run")
    module = build_module(cfg)
    write_run_dir(tmp_path / "run", cfg, module)
    save_snapshot(snapshot_path(tmp_path / "run", 0), model_signs(module.net), 0)
    live = load_kernel_signs(module)
    for src in (tmp_path / "run", tmp_path / "run" / "checkpoints" / "last.ckpt", snapshot_path(tmp_path / "run", 0)):
        got = load_kernel_signs(src)
        assert list(got) == list(live) and all(torch.equal(got[k], live[k]) for k in live)
    hist = sum(histogram(kernel_ids(s)) for s in live.values())
    assert hist.sum().item() == sum(s.shape[0] * s.shape[1] for s in live.values())


@pytest.mark.slow  # a resnet20 with projection shortcuts through the callback and the CLI; in CI's slow step
def test_kernels_json_lists_1x1_shortcuts_as_not_counted(cfg_factory, tmp_path, capsys):
    """Binary 1x1 shortcuts have no kernel ids: the callback and the CLI both list them in not_counted."""
    import json
    from types import SimpleNamespace

    from qbn.callbacks.kernel_stats import KernelStats
    from qbn.kernels.__main__ import main as kernels_main

    run = tmp_path / "run"
    cfg = cfg_factory("dataset=synthetic", "model=resnet20", "model.backbone.shortcut=B", run_dir=run)
    module = build_module(cfg)
    shortcuts = [k for k, m in binary_layers(module.net).items() if tuple(m.weight.shape[-2:]) == (1, 1)]
    assert len(shortcuts) == 2  # the two projection shortcuts of a resnet20 with shortcut B
    write_run_dir(run, cfg, module)
    trainer = SimpleNamespace(is_global_zero=True, current_epoch=1, loggers=[])
    KernelStats(str(run), figures=False).on_fit_end(trainer, module)
    stats = json.loads((run / "kernels.json").read_text())
    assert stats["not_counted"] == shortcuts and not set(shortcuts) & set(stats["layers"])
    assert kernels_main([str(run), "--out", str(tmp_path / "offline")]) == 0
    assert json.loads((tmp_path / "offline" / "kernels.json").read_text())["not_counted"] == shortcuts
    assert f"not counted: {', '.join(shortcuts)}" in capsys.readouterr().out


def test_sweep_view_table_and_references(tmp_path):
    import json

    from qbn.aggregate import VIEWS
    from qbn.kernels.accuracy_vs_bits import qbn_table, qbn_view

    assert qbn_view in VIEWS
    bwn = tmp_path / "bwn"
    bwn.mkdir()
    (bwn / "summary.json").write_text(json.dumps({"status": "completed", "test/acc": 0.9, "binary": True}))
    rows = [{"job": str(i), "status": "completed", "seed": seed, "test/acc": acc, "bits_per_weight": bpw,
             "model_bytes": 100 + i, "qbn": {"bits": n, "codebook": "per_layer", "from_ckpt": str(bwn)},
             "overrides": {}}
            for i, (n, seed, acc, bpw) in enumerate([(5, 0, 0.8, 0.57), (5, 1, 0.9, 0.57), (3, 0, 0.5, 0.35)])]
    rows.append({"job": "9", "status": "completed", "binary": False, "test/acc": 0.95, "overrides": {}})
    table = qbn_table(rows)
    assert [t["setting"] for t in table] == ["n=5 per_layer", "n=3 per_layer"]
    assert table[0]["acc"] == pytest.approx(0.85) and table[0]["n"] == 2
    assert table[0]["std"] == pytest.approx(0.0707107, rel=1e-4)
    md = qbn_view(tmp_path, rows)
    assert "| BWN (reference) | 1 | 1 | 90.00" in md and "| full precision (reference) | 1 | 32 | 95.00" in md
    assert "-5.00" in md and (tmp_path / "figures" / "qbn_accuracy_bits.png").exists()
    assert qbn_view(tmp_path, [r for r in rows if "qbn" not in r]) == ""


def test_progressive_schedule():
    from qbn.kernels.quantize import progressive_due

    assert [progressive_due(e, 18, 4, None) for e in range(4)] == [6, 12, 18, 18]    # all by the last epoch
    assert [progressive_due(e, 3, 10, 2) for e in range(6)] == [1, 1, 2, 2, 3, 3]
    assert progressive_due(0, 5, 1, None) == 5
