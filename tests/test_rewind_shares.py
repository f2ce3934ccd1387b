"""K as a share of training: the share grammar, share snapshots of a trunk, rewinding to them, and
freeze-and-continue at a share (unit tests here; the real runs at the end are slow)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from qbn.binary import BinaryConv2d
from qbn.checkpoint import load_checkpoint
from qbn.rewind import (
    FreezeSigns,
    RewindError,
    RewindPoints,
    check_shares,
    parse_freeze_at,
    parse_signs,
    select_signs,
)
from qbn.signs import (
    list_share_snapshots,
    load_snapshot,
    save_snapshot,
    share_label,
    share_snapshot_path,
    share_step,
    snapshot_path,
)
from qbn.testing.runs import compose_run, fake_trunk, tiny
from qbn.train import train


def test_share_grammar():
    s = parse_signs("share:0.125")
    assert (s.mode, s.share, s.epoch) == ("share", 0.125, None)
    r = parse_signs("random:share:0.25")
    assert (r.mode, r.share, r.epoch) == ("random", 0.25, None)
    assert parse_signs("random:3").share is None and parse_signs("random:3").epoch == 3
    for bad in ("share:0", "share:1", "share:1.5", "share:x", "random:share:", "share:-0.1"):
        with pytest.raises(RewindError, match="is not a share of training"):
            parse_signs(bad)
    assert parse_freeze_at(3).epoch == 3 and parse_freeze_at("3").share is None
    assert parse_freeze_at("epoch:2").epoch == 2
    f = parse_freeze_at("share:0.25")
    assert (f.epoch, f.share) == (None, 0.25)
    for bad in ("-1", "share:2", "half"):
        with pytest.raises(RewindError, match="freeze_signs_at"):
            parse_freeze_at(bad)
    assert check_shares([0.5, 0.125, 0.5]) == [0.125, 0.5]
    with pytest.raises(RewindError, match="rewind.save_shares: 1.0 is not a share"):
        check_shares([0.5, 1.0])


def test_share_steps_labels_and_files(tmp_path):
    assert [share_step(f, 80) for f in (0.0625, 0.125, 0.25, 0.5, 0.75)] == [5, 10, 20, 40, 60]
    assert share_step(0.25, 10) == 2 and share_step(0.75, 10) == 8   # Python's round: halves to even
    assert [share_label(f) for f in (0.0625, 0.125, 0.5)] == ["0.0625", "0.125", "0.5"]
    signs = {"l": torch.tensor([[True, False]])}
    save_snapshot(share_snapshot_path(tmp_path, 0.25), signs, 1, step=7, share=0.25)
    save_snapshot(share_snapshot_path(tmp_path, 0.0625), signs, 0, step=2, share=0.0625)
    assert list(list_share_snapshots(tmp_path)) == [0.0625, 0.25]
    assert (tmp_path / "signs" / "share_0.25.pt").exists()
    payload = torch.load(tmp_path / "signs" / "share_0.25.pt", weights_only=True)
    assert (payload["step"], payload["share"], payload["epoch"]) == (7, 0.25, 1)
    assert torch.equal(load_snapshot(share_snapshot_path(tmp_path, 0.25))["l"], signs["l"])


def test_select_signs_at_a_share_and_the_error_lists_saved_shares(tmp_path):
    d = fake_trunk(tmp_path, epochs=2)
    ref = load_snapshot(snapshot_path(d, 1))
    save_snapshot(share_snapshot_path(d, 0.125), ref, 0, step=1, share=0.125)
    save_snapshot(share_snapshot_path(d, 0.5), load_snapshot(snapshot_path(d, 2)), 1, step=4, share=0.5)
    signs, mask, k = select_signs(d, parse_signs("share:0.125"), 2, seed=0)
    assert mask is None and k is None and all(torch.equal(signs[n], ref[n]) for n in ref)
    rnd, _, _ = select_signs(d, parse_signs("random:share:0.125"), 2, seed=0)
    assert set(rnd) == set(ref) and all(rnd[n].shape == ref[n].shape for n in ref)
    with pytest.raises(RewindError, match=r"saved no signs at share 0.25 .*\(saved shares: 0.125, 0.5\)") as e:
        select_signs(d, parse_signs("share:0.25"), 2, seed=0)
    assert "\n" not in str(e.value)


def test_rewind_points_save_each_share_once_at_its_step(tmp_path):
    net = _net()
    saved = []
    trainer = SimpleNamespace(estimated_stepping_batches=8, global_step=0, current_epoch=0, is_global_zero=True,
                              save_checkpoint=lambda path: saved.append((trainer.global_step, path.name)))
    cb = RewindPoints(str(tmp_path), shares=[0.25, 0.0625, 0.75])
    cb.on_train_start(trainer, SimpleNamespace(net=net))
    for step in (1, 1, 2, 3, 6, 6):                     # a repeated step: no optimizer step on that batch
        trainer.global_step = step
        cb.on_train_batch_end(trainer, SimpleNamespace(net=net), None, None, 0)
    assert saved == [(0, "share_0.0625.ckpt"), (2, "share_0.25.ckpt"), (6, "share_0.75.ckpt")]
    assert list(list_share_snapshots(tmp_path)) == [0.0625, 0.25, 0.75]
    assert torch.load(share_snapshot_path(tmp_path, 0.75), weights_only=True)["step"] == 6


def _net():
    torch.manual_seed(0)
    return nn.Sequential(BinaryConv2d(2, 3, 3, bias=False))


def test_freeze_signs_at_a_share_fixes_the_signs_of_that_step():
    net = _net()
    module = SimpleNamespace(net=net)
    cb = FreezeSigns(at="share:0.25")
    trainer = SimpleNamespace(estimated_stepping_batches=12, global_step=0, is_global_zero=True, ckpt_path=None)
    cb.on_fit_start(trainer, module)
    cb.on_train_start(trainer, module)
    assert cb._step == 3
    for step in range(1, 7):
        with torch.no_grad():
            net[0].weight.neg_()                          # every sign flips at every step
        trainer.global_step = step
        if step == 3:
            at_three = net[0].signs().clone()
        cb.on_train_batch_end(trainer, module, None, None, step - 1)
        fixed = net[0].fixed_signs
        assert (fixed is None) == (step < 3)
    assert torch.equal(net[0].signs(), at_three) and not torch.equal(net[0].weight >= 0, at_three)


def test_freeze_at_epoch_still_works_and_the_old_key_is_read():
    assert FreezeSigns(epoch=2).epoch == 2 and FreezeSigns(at=0).epoch == 0
    with pytest.raises(RewindError):
        FreezeSigns(at=-1)


# ---- real runs (synthetic data, 4 steps an epoch) ---------------------------------------------

QUIET = tiny("trainer.accelerator=cpu", "trainer.max_epochs=2", "seed=5")


@pytest.mark.slow
def test_trunk_saves_shares_and_the_freeze_arm_matches_it(tmp_path):
    """A trunk saves signs and state at each share (8 steps: 0.0625 -> step 0, 0.375 -> 3, 0.75 -> 6);
    the same seed with rewind=freeze at share 0.375 is the trunk up to step 3, then every sign stays."""
    out = tmp_path / "out"
    trunk = out / "trk" / "2026-01-01_00-00-00_000000"
    s = train(compose_run(trunk, [*QUIET, f"paths.output_dir={out}", "rewind=trunk",
                                  "rewind.save_shares=[0.0625,0.375,0.75]"]))
    assert s["status"] == "completed" and s["rewind/share_steps"] == {"0.0625": 0, "0.375": 3, "0.75": 6}
    for f in ("0.0625", "0.375", "0.75"):
        assert (trunk / "signs" / f"share_{f}.pt").exists() and (trunk / "checkpoints" / f"share_{f}.ckpt").exists()
    s0, s3 = load_snapshot(snapshot_path(trunk, 0)), load_snapshot(share_snapshot_path(trunk, 0.375))
    assert all(torch.equal(s0[n], load_snapshot(share_snapshot_path(trunk, 0.0625))[n]) for n in s0)
    assert load_checkpoint(trunk / "checkpoints" / "share_0.375.ckpt")["global_step"] == 3
    final = load_snapshot(snapshot_path(trunk, 2))
    assert any(not torch.equal(final[n], s3[n]) for n in s3)   # the trunk's signs still move after step 3

    frozen = tmp_path / "frz"
    s = train(compose_run(frozen, [*QUIET, "rewind=freeze", "rewind.freeze_signs_at=share:0.375"]))
    assert s["status"] == "completed" and s["freeze_signs_at"] == "share:0.375" and s["freeze_signs_step"] == 3
    end = load_snapshot(snapshot_path(frozen, 2))
    state = load_checkpoint(frozen / "checkpoints" / "last.ckpt")["state_dict"]
    for name in s3:
        assert torch.equal(end[name], s3[name]), name              # every final sign is the step-3 sign
        assert torch.equal(state[f"net.{name}.fixed_signs"], s3[name])
    latent_moved = any(not torch.equal(state[f"net.{n}.weight"], load_checkpoint(
        trunk / "checkpoints" / "share_0.375.ckpt")["state_dict"][f"net.{n}.weight"]) for n in s3)
    assert latent_moved                                             # magnitudes trained on

    rw = train(compose_run(out / "rw" / "a", [*tiny("trainer.accelerator=cpu", drop=("trainer.max_epochs",)),
                                              f"paths.output_dir={out}", "rewind=rewound", "rewind.trunk=trk",
                                              "rewind.signs=share:0.375"]))
    assert rw["status"] == "completed" and rw["rewind/share"] == 0.375 and rw["rewind/K"] is None
    with pytest.raises(RewindError, match=r"saved shares: 0.0625, 0.375, 0.75"):
        train(compose_run(out / "rw" / "b", [*tiny("trainer.accelerator=cpu", drop=("trainer.max_epochs",)),
                                             f"paths.output_dir={out}", "rewind=rewound", "rewind.trunk=trk",
                                             "rewind.signs=random:share:0.3"]))
