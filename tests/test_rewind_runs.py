"""Rewinding through the real entry point (qbn.train.train, in-process, synthetic data): a trunk,
rewound runs from it, freeze_signs_at, and the user mistakes that end in one clear message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from qbn.checkpoint import load_checkpoint
from qbn.rewind import RewindError
from qbn.signs import load_snapshot, snapshot_path
from qbn.testing.runs import compose_cfg, compose_run, fake_trunk, tiny
from qbn.train import train

# what every run here shares; the rewound runs leave trainer.max_epochs to the trunk
QUIET = tiny("trainer.accelerator=cpu")


def _listing(d: Path) -> dict:
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def trunk(tmp_path_factory):
    """A 2-epoch trunk under <out>/trk/, saving its epoch-1 state."""
    out = tmp_path_factory.mktemp("rewind")
    run_dir = out / "trk" / "2026-01-01_00-00-00_000000"
    summary = train(compose_run(run_dir, [*QUIET, f"paths.output_dir={out}", "trainer.max_epochs=2", "rewind=trunk",
                                             "rewind.save_weights=[1]"]))
    assert summary["status"] == "completed"
    return out, run_dir, summary


def _rewound(out: Path, name: str, *overrides: str) -> dict:
    return train(compose_run(out / "rw" / name,
                             [*QUIET, f"paths.output_dir={out}", "rewind=rewound", "rewind.trunk=trk", *overrides]))


@pytest.mark.slow
def test_trunk_saves_what_rewinding_needs(trunk):
    _, d, _ = trunk
    for f in ("checkpoints/init.ckpt", "checkpoints/epoch_001.ckpt", "checkpoints/last.ckpt",
              "signs/epoch_000.pt", "signs/epoch_001.pt", "signs/epoch_002.pt"):
        assert (d / f).exists(), f
    init = load_checkpoint(d / "checkpoints" / "init.ckpt")
    s0 = load_snapshot(snapshot_path(d, 0))
    for name, signs in s0.items():  # init.ckpt and the epoch-0 snapshot are the same moment
        assert torch.equal(init["state_dict"][f"net.{name}.weight"] >= 0, signs)


@pytest.mark.slow
def test_final_signs_with_last_weights_reproduce_the_trunk(trunk):
    out, d, summary = trunk
    before = _listing(d)
    rw = _rewound(out, "final", "rewind.signs=final", "rewind.weights=epoch:last")
    assert rw["status"] == "completed"
    assert rw["test/acc"] == summary["test/acc"]
    assert rw["rewind/trunk"] == str(d.resolve()) and rw["rewind/K"] == 2 and rw["rewind/J"] == 2
    assert rw["rewind/mode"] == "final" and rw["rewind/fixed_share"] == 1.0
    assert _listing(d) == before  # never writes into the trunk's directory


def test_rewound_from_init_trains_with_signs_fixed_to_s_k(trunk):  # the default run's rewinding test
    out, d, _ = trunk
    before = _listing(d)
    rw = _rewound(out, "k1", "rewind.signs=epoch:1", "rewind.weights=init")
    assert rw["status"] == "completed" and rw["max_epochs"] == 2 and rw["epochs"] == 2  # the trunk's recipe
    assert rw["rewind/K"] == 1 and rw["rewind/J"] == 0 and rw["rewind/weights"] == "init"
    state = load_checkpoint(out / "rw" / "k1" / "checkpoints" / "last.ckpt")["state_dict"]
    s1 = load_snapshot(snapshot_path(d, 1))
    assert s1   # else the loop below checks nothing
    for name, signs in s1.items():
        assert torch.equal(state[f"net.{name}.fixed_signs"], signs)
        assert f"net.{name}.fixed_mask" not in state
    assert _listing(d) == before


@pytest.mark.slow
def test_rewound_from_epoch_j_goes_on_with_the_trunks_schedule(trunk):
    out, d, summary = trunk
    before = _listing(d)
    rw = _rewound(out, "j1", "rewind.signs=stable:0", "rewind.weights=epoch:1")
    assert rw["status"] == "completed" and rw["rewind/J"] == 1 and rw["epochs"] == 2
    assert rw["global_step"] == summary["global_step"]  # one more epoch, from the trunk's epoch 1
    assert 0 < rw["rewind/fixed_share"] <= 1
    assert _listing(d) == before  # continuing from its checkpoint leaves the trunk's files alone


@pytest.mark.slow
def test_freeze_signs_at_fixes_the_signs_of_that_epoch(tmp_path):
    run = tmp_path / "frz"
    s = train(compose_run(run, [*QUIET, "trainer.max_epochs=2", "rewind=freeze", "rewind.freeze_signs_at=1"]))
    assert s["status"] == "completed" and s["freeze_signs_at"] == 1
    state = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    s1, s2 = load_snapshot(snapshot_path(run, 1)), load_snapshot(snapshot_path(run, 2))
    assert s1   # else the loop below checks nothing
    for name in s1:
        assert torch.equal(state[f"net.{name}.fixed_signs"], s1[name])
        assert torch.equal(s2[name], s1[name])


def test_user_mistakes_end_in_one_clear_message(tmp_path):
    """Missing trunk, K beyond the trunk, a trunk of another model: RewindError before any training."""
    d = fake_trunk(tmp_path, epochs=2, name="fake")
    (d / ".hydra" / "config.yaml").unlink()

    def run(*o):
        return train(compose_cfg(tmp_path / "rw", [*QUIET, f"paths.output_dir={tmp_path}", "rewind=rewound", *o]))

    with pytest.raises(RewindError, match="trunk 'absent' not found"):
        run("rewind.trunk=absent")
    with pytest.raises(RewindError, match="lacks .*config.yaml"):
        run("rewind.trunk=fake")
    compose_run(d, [*QUIET])  # a real config for the fake trunk: the same as this run's, then another model
    with pytest.raises(RewindError, match="beyond trunk .* epochs 0..2"):
        run("rewind.trunk=fake", "rewind.signs=epoch:3")
    with pytest.raises(RewindError, match="another model: its scaling.name is 'xnor'.*e.g. scaling=xnor"):
        run("rewind.trunk=fake", "scaling=none")
    with pytest.raises(RewindError, match="another model: its model .*e.g. model=resnet20"):
        run("rewind.trunk=fake", "model=resnet32")
    assert not (tmp_path / "rw" / "checkpoints").exists()
    assert os.listdir(d / "signs")  # untouched
