"""Files written by an earlier qbn (tests/fixtures/README.md) still load with this one: the
checkpoint rebuilds its model from the run's saved config, the packed file gives exactly the
checkpoint model's logits, and the sign snapshot holds the checkpoint's signs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from qbn.binary import binary_layers
from qbn.checkpoint import load_checkpoint, model_from_checkpoint
from qbn.export import is_packed_file, load
from qbn.rundir import read_summary
from qbn.signs import load_snapshot, model_signs
from qbn.testing.runs import run_cli, tiny

OLD_RUN = Path(__file__).parent / "fixtures" / "run_eac1037"
X = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))


def test_old_checkpoint_loads_into_its_rebuilt_model():
    ckpt = load_checkpoint(OLD_RUN)
    assert ckpt["epoch"] == 0 and ckpt["global_step"] > 0
    module, cfg = model_from_checkpoint(OLD_RUN)
    assert cfg.model.name == "resnet20" and cfg.scaling.name == "xnor"
    assert len(binary_layers(module.net)) == 18   # 9 blocks x 2 convs; first conv and classifier full precision
    state = module.state_dict()
    assert all(torch.equal(state[k], v) for k, v in ckpt["state_dict"].items())


def test_old_packed_file_predicts_like_the_old_checkpoint():
    path = OLD_RUN / "model.qbn"
    assert is_packed_file(path)
    module, _ = model_from_checkpoint(OLD_RUN)
    packed = load(path, channels_last=module.channels_last)  # bit for bit in the same memory format (NCHW here)
    with torch.no_grad():
        assert torch.equal(packed(X), module(X))
        assert packed(X).argmax(1).tolist() == module(X).argmax(1).tolist()


def test_old_sign_snapshot_holds_the_checkpoint_signs():
    module, _ = model_from_checkpoint(OLD_RUN)
    snapshot = load_snapshot(OLD_RUN / "signs" / "epoch_001.pt")
    signs = model_signs(module.net)
    assert set(snapshot) == set(signs)
    assert all(torch.equal(snapshot[k], signs[k]) for k in signs)


@pytest.mark.slow
def test_old_run_resumes_for_one_more_epoch(tmp_path):
    run = shutil.copytree(OLD_RUN, tmp_path / "old_run")
    r = run_cli("qbn.train", f"resume={run}", *tiny("trainer.max_epochs=2", "optimizer=sgd", "optimizer.momentum=0.0"))
    assert r.returncode == 0, r.stderr[-2000:]
    summary = read_summary(run)
    assert summary["status"] == "completed" and summary["epochs"] == 2
