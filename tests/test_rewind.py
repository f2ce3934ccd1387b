"""Rewinding with fixed signs: the layer's fixed signs, the sign choices (random, stable:K), the
trunk's saved state restored bit for bit, the recipe inheritance and the clear-error cases."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from qbn.binary import BinaryConv2d, BinaryPolicy, binarize, binary_layers
from qbn.models import resnet20
from qbn.rewind import (
    RewindError,
    RewindPoints,
    check_same_model,
    find_trunk,
    inherit_recipe,
    load_weights,
    parse_signs,
    parse_weights,
    random_signs,
    select_signs,
    share_final,
    stable_mask,
    weights_file,
)
from qbn.signs import snapshot_path
from qbn.testing.runs import fake_trunk, sign_history


def _layer(scaling: str, seed: int = 0) -> BinaryConv2d:
    torch.manual_seed(seed)
    return BinaryConv2d.from_conv(nn.Conv2d(3, 4, 3, padding=1, bias=False), scaling)


def _train_steps(layer: nn.Module, steps: int = 5) -> None:
    gain = nn.Parameter(torch.ones(()))  # something downstream trains even when the layer has nothing to train
    opt = torch.optim.Adam([*layer.parameters(), gain], lr=0.05)
    x = torch.randn(8, 3, 6, 6)
    for _ in range(steps):
        opt.zero_grad()
        (gain * layer(x) - 1).square().mean().backward()
        opt.step()


@pytest.mark.parametrize("scaling", ["xnor", "none", "learnable", "lq"])
def test_fixed_signs_give_alpha_times_s_after_steps(scaling):
    layer = _layer(scaling)
    s = torch.rand(layer.weight.shape, generator=torch.Generator().manual_seed(1)) < 0.5
    layer.fix_signs(s)
    w0 = layer.weight.detach().clone()
    _train_steps(layer)
    b = s.float() * 2 - 1
    alpha = layer.alpha()
    expected = b if alpha is None else alpha * b
    assert torch.equal(layer.effective_weight(), expected)
    assert torch.equal(layer.signs(), s)
    if scaling == "xnor":  # alpha still follows mean |W|, so the latent magnitudes keep training
        assert not torch.equal(layer.weight.detach(), w0)
        direct = torch.stack([layer.weight[o].abs().mean() for o in range(layer.weight.shape[0])]).view(-1, 1, 1, 1)
        assert torch.allclose(alpha, direct)
    # the forward pass uses exactly alpha * S
    x = torch.randn(2, 3, 5, 5)
    assert torch.allclose(layer(x), nn.functional.conv2d(x, expected.detach(), padding=1))


def test_partly_fixed_signs_follow_sign_w_elsewhere():
    layer = _layer("xnor")
    s = torch.rand(layer.weight.shape, generator=torch.Generator().manual_seed(2)) < 0.5
    mask = torch.rand(layer.weight.shape, generator=torch.Generator().manual_seed(3)) < 0.3
    layer.fix_signs(s, mask)
    _train_steps(layer)
    w = layer.weight.detach()
    for i, (m, si, wi) in enumerate(zip(mask.flatten(), s.flatten(), w.flatten(), strict=True)):
        assert bool(layer.signs().flatten()[i]) == (bool(si) if m else bool(wi >= 0))


def test_random_signs_keep_each_layers_plus_one_share():
    ref = {"a": torch.rand(64, 32, 3, 3) < 0.8, "b": torch.rand(32, 16, 3, 3) < 0.3,
           "c": torch.zeros(16, 16, 3, 3, dtype=torch.bool)}
    out = random_signs(ref, torch.Generator().manual_seed(0))
    for name, s in ref.items():
        p, n = s.float().mean().item(), s.numel()
        assert out[name].shape == s.shape
        assert abs(out[name].float().mean().item() - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-12
        assert not torch.equal(out[name], s) or p in (0.0, 1.0)
    again = random_signs(ref, torch.Generator().manual_seed(0))
    assert all(torch.equal(out[k], again[k]) for k in ref)


def test_stable_mask_fixes_exactly_the_weights_with_last_flip_at_most_k():
    h = sign_history()
    for k in range(h.shape[0]):
        mask = stable_mask(h, k)
        for i in range(h.shape[1]):
            last = max([e for e in range(1, h.shape[0]) if h[e, i] != h[e - 1, i]], default=0)
            assert bool(mask[i]) == (last <= k)


def test_select_signs_epoch_final_stable_from_snapshots(tmp_path):
    d = fake_trunk(tmp_path)
    signs, mask, k = select_signs(d, parse_signs("epoch:2"), 4, seed=0)
    assert k == 2 and mask is None
    h = sign_history(4, n=108)
    assert torch.equal(signs["l1"].flatten(), h[2, :36]) and torch.equal(signs["l2"].flatten(), h[2, 36:])
    final, _, k = select_signs(d, parse_signs("final"), 4, seed=0)
    assert k == 4 and torch.equal(final["l2"].flatten(), h[4, 36:])
    init, _, k = select_signs(d, parse_signs("init"), 4, seed=0)
    assert k == 0 and torch.equal(init["l1"].flatten(), h[0, :36])
    stable, mask, k = select_signs(d, parse_signs("stable:1"), 4, seed=0)
    flat_mask = torch.cat([mask["l1"].flatten(), mask["l2"].flatten()])
    assert torch.equal(flat_mask, stable_mask(h, 1))
    assert torch.equal(stable["l1"].flatten(), h[4, :36])  # the fixed ones hold their final sign (= S_1 there)
    assert torch.equal(h[1][flat_mask], h[4][flat_mask])
    assert share_final(d, 4) == pytest.approx([(h[e] == h[4]).float().mean().item() for e in range(5)])


def test_k_beyond_last_epoch_and_bad_specs_are_clear(tmp_path):
    d = fake_trunk(tmp_path)
    with pytest.raises(RewindError, match="beyond trunk .* epochs 0..4"):
        select_signs(d, parse_signs("epoch:7"), 4, seed=0)
    with pytest.raises(RewindError, match="beyond trunk"):
        weights_file(d, parse_weights("epoch:9"), 4)
    for bad in ("epoch", "K:3", "stable", "epoch:-1"):
        with pytest.raises(RewindError, match="rewind.signs"):
            parse_signs(bad)
    with pytest.raises(RewindError, match="rewind.weights"):
        parse_weights("final")


def test_missing_files_name_the_file_and_the_option(tmp_path):
    d = fake_trunk(tmp_path)
    snapshot_path(d, 3).unlink()
    with pytest.raises(RewindError, match=r"epoch_003\.pt.*sign_snapshots"):
        select_signs(d, parse_signs("epoch:3"), 4, seed=0)
    with pytest.raises(RewindError, match=r"init\.ckpt.*rewind=trunk"):
        weights_file(d, parse_weights("init"), 4)
    with pytest.raises(RewindError, match=r"epoch_002\.ckpt.*rewind.save_weights=\[2\]"):
        weights_file(d, parse_weights("epoch:2"), 4)
    assert weights_file(d, parse_weights("fresh"), 4) == (None, None)


def test_find_trunk_by_name_or_path_and_clear_errors(tmp_path):
    d = fake_trunk(tmp_path)
    assert find_trunk("trunk", tmp_path) == d
    assert find_trunk(str(d), tmp_path / "elsewhere") == d
    with pytest.raises(RewindError, match="trunk 'nope' not found.*rewind=trunk"):
        find_trunk("nope", tmp_path)
    failed = fake_trunk(tmp_path, name="bad", status="failed")
    with pytest.raises(RewindError, match="no completed run"):
        find_trunk("bad", tmp_path)
    with pytest.raises(RewindError, match="status 'failed'"):
        find_trunk(str(failed), tmp_path)
    with pytest.raises(RewindError, match="rewind.trunk is not set"):
        find_trunk("???", tmp_path)


def test_trunk_of_another_model_is_one_clear_message(tmp_path):
    ours = OmegaConf.create({"model": {"name": "resnet20"}, "scaling": {"name": "xnor"}})
    theirs = OmegaConf.create({"model": {"name": "resnet32"}, "scaling": {"name": "xnor"}})
    with pytest.raises(RewindError, match="another model.*model.*resnet32.*model=resnet32"):
        check_same_model(ours, theirs, tmp_path)
    check_same_model(ours, ours, tmp_path)


def test_recipe_comes_from_the_trunk_unless_on_the_command_line():
    trunk = OmegaConf.create({"trainer": {"max_epochs": 7}, "optimizer": {"name": "adam", "lr": 0.002},
                              "scheduler": {"name": "cosine"}, "dataset": {"batch_size": 32, "train_subset": 100}})
    run = OmegaConf.create({"trainer": {"max_epochs": 3}, "optimizer": {"name": "adam", "lr": 0.1},
                            "scheduler": {"name": "cosine"}, "dataset": {"batch_size": 64, "train_subset": None}})
    changed = inherit_recipe(run, trunk, ["optimizer.lr", "rewind.signs", "seed"])
    assert run.trainer.max_epochs == 7 and run.dataset.batch_size == 32 and run.dataset.train_subset == 100
    assert run.optimizer.lr == 0.1  # given on the command line: kept
    assert changed == {"trainer.max_epochs": 7, "dataset.batch_size": 32, "dataset.train_subset": 100}
    run3 = OmegaConf.create({"dataset": {"augment": {"crop_padding": 2, "flip": True}}})
    inherit_recipe(run3, OmegaConf.create({"dataset": {"augment": {}}}), [])
    assert OmegaConf.to_container(run3.dataset.augment) == {}  # an empty recipe entry is inherited as empty
    run2 = OmegaConf.create({"trainer": {"max_epochs": 3}, "optimizer": {"name": "sgd", "lr": 0.1}})
    inherit_recipe(run2, trunk, ["optimizer", "trainer.max_epochs"])  # a group override keeps the whole group
    assert run2.optimizer.name == "sgd" and run2.trainer.max_epochs == 3
    run4 = OmegaConf.create({"trainer": {"max_epochs": 3}})
    inherit_recipe(run4, trunk, ["trainer", "dataset"])  # device or data group choices: the recipe is still the trunk's
    assert run4.trainer.max_epochs == 7


class _Net(nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.net = binarize(resnet20(num_classes=10, in_channels=1), BinaryPolicy())
        self.bn_stat = None


def test_weights_init_restores_the_trunks_epoch0_state_bit_for_bit(tmp_path):
    trunk = _Net(0)
    # move BatchNorm statistics away from their defaults so they are checked too
    for m in trunk.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_()
            m.num_batches_tracked += 3
    RewindPoints(str(tmp_path)).on_fit_start(SimpleNamespace(ckpt_path=None, is_global_zero=True), trunk)
    reference = {k: v.clone() for k, v in trunk.state_dict().items()}
    other = _Net(1)
    layers = binary_layers(other.net)
    next(iter(layers.values())).fix_signs(torch.ones_like(next(iter(layers.values())).weight, dtype=torch.bool))
    load_weights(other, tmp_path / "checkpoints" / "init.ckpt")
    state = other.state_dict()
    assert set(state) == set(reference)
    for k, v in reference.items():
        assert torch.equal(state[k], v), k
    assert all(layer.fixed_signs is None for layer in binary_layers(other.net).values())


def test_primary_subnet_preset_composes_for_both_steps(cfg_factory):
    trunk = cfg_factory("experiment=primary_subnet", "rewind=trunk", "name=primary_subnet_trunk")
    assert trunk.model.name == "resnet20" and trunk.dataset.name == "fashion_mnist" and trunk.trainer.max_epochs == 15
    assert trunk.rewind.signs is None and trunk.callbacks.rewind_points._target_.endswith("RewindPoints")
    assert trunk.callbacks.sign_snapshots.every_n_epochs == 1
    sweep = cfg_factory("experiment=primary_subnet", "rewind=rewound")
    assert sweep.rewind.trunk == "primary_subnet_trunk" and sweep.rewind.weights == "init"
    params = sweep.hydra.sweeper.params
    assert params["rewind.signs"].split(",") == ["epoch:0", "epoch:1", "epoch:3", "epoch:5", "random", "final"]
    assert params["seed"] == "0,1"
    assert cfg_factory().rewind.signs is None  # off by default
    assert cfg_factory("rewind=freeze", "rewind.freeze_signs_at=2").callbacks.freeze_signs.at == 2
    assert cfg_factory("rewind=freeze", "rewind.freeze_signs_at=share:0.25").callbacks.freeze_signs.at == "share:0.25"


def test_rewind_view_table_and_figure(tmp_path):
    from qbn.rewind.sweep_view import rewind_view

    d = fake_trunk(tmp_path, epochs=4)
    h = sign_history(4, n=108)
    rows = []
    for signs, mode, k, accs in (("epoch:0", "epoch", 0, [0.30, 0.34]), ("epoch:2", "epoch", 2, [0.45, 0.47]),
                                 ("random", "random", None, [0.20, 0.22]), ("final", "final", 4, [0.49, 0.51])):
        for seed, acc in enumerate(accs):
            rows.append({"status": "completed", "test/acc": acc, "seed": seed, "rewind/trunk": str(d),
                         "rewind/signs": signs, "rewind/mode": mode, "rewind/K": k, "rewind/weights": "init",
                         "rewind/fixed_share": 1.0})
    rows.append({"status": "failed", "rewind/trunk": str(d), "rewind/signs": "epoch:2", "rewind/mode": "epoch",
                 "rewind/K": 2, "rewind/weights": "init"})
    md = rewind_view(tmp_path, rows)
    assert (tmp_path / "figures" / "rewind.png").stat().st_size > 0
    lines = {line.split("|")[1].strip(): line
             for line in md.splitlines() if line.startswith("| ") and "---" not in line}
    assert "| 50.00 |" in lines["trunk"]
    share2 = (h[2] == h[4]).float().mean().item()
    assert f"| {100 * share2:.2f} |" in lines["epoch:2"] and "| 2/3 |" in lines["epoch:2"]
    assert "46.00 ± 1.41" in lines["epoch:2"] and "-4.00" in lines["epoch:2"]
    assert "21.00 ± 1.41" in lines["random"] and "50.00 ± 1.41" in lines["final"]
    assert rewind_view(tmp_path, [{"status": "completed", "test/acc": 0.5}]) == ""


def test_rewind_view_is_registered():
    import qbn.aggregate
    from qbn.rewind.sweep_view import rewind_view

    assert rewind_view in qbn.aggregate.VIEWS
