"""Every QBN method fine-tuned from one digits BWN through the real entry points, with and without
distillation, then packed: the packed file predicts what the trained model did on 1,000 images
(slow: a minute or more per run on 2 CPU cores)."""

from __future__ import annotations

import json

import pytest
import torch

from qbn.checkpoint import load_checkpoint, model_from_checkpoint
from qbn.data import DigitsDataModule
from qbn.export import export, load
from qbn.testing.runs import run_cli, tiny

pytestmark = pytest.mark.slow

COMMON = tiny("dataset=digits", "trainer=cpu", "trainer.limit_train_batches=4")


def _train(run_dir, *overrides):
    return run_cli("qbn.train", *COMMON, f"hydra.run.dir={run_dir}", *overrides)


@pytest.fixture(scope="module")
def bwn_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("bwn") / "run"
    proc = _train(run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    """The digits test images (359) and 641 random uint8 8x8 images: 1,000 in all; and the digits labels."""
    _, _, x, y = DigitsDataModule.load_arrays(None)
    noise = torch.randint(0, 256, (1000 - len(x), 1, 8, 8), generator=torch.Generator().manual_seed(0),
                          dtype=torch.uint8)
    return torch.cat([x, noise]), y


@pytest.mark.parametrize("overrides, from_bwn", [
    (("qbn.bits=4",), True),
    (("qbn.bits=4", "qbn.distill.weight=0.5"), True),
    (("qbn.bits=4", "qbn.method=learned"), True),
    (("qbn.bits=4", "qbn.method=learned", "qbn.distill.weight=0.5", "qbn.codebook=shared",
      "qbn.learned_reseed_every=1"), True),
    (("qbn.budget=0.6", "qbn.method=learned", "qbn.learned_init=random", "qbn.learned_lr=0.01"), True),
    (("qbn.bits=9", "qbn.distill.weight=0.5"), True),      # the matched control: the BWN fine-tuned, distilled
    (("qbn.bits=4", "qbn.method=learned"), False),         # from scratch
], ids=["topk", "topk-distill", "learned", "learned-shared-distill", "learned-budget-random", "control-9-distill",
        "learned-scratch"])
def test_finetune_runs_and_packs(bwn_run, tmp_path, overrides, from_bwn):
    run_dir = tmp_path / "run"
    proc = _train(run_dir, *overrides, *([f"qbn.from_ckpt={bwn_run}"] if from_bwn else []))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    settings = dict(o.split("=", 1) for o in overrides)
    assert summary["status"] == "completed"
    assert summary["qbn/method"] == settings.get("qbn.method", "topk")
    assert summary["qbn/distill_weight"] == float(settings.get("qbn.distill.weight", 0.0))
    if settings.get("qbn.bits") == "9":
        assert summary["bits_per_weight"] == 1.0
    else:
        assert summary["bits_per_weight"] < 1.0
    if "qbn.budget" in settings:
        assert summary["bits_per_weight"] <= 0.6
    state = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    bwn_keys = set(load_checkpoint(bwn_run / "checkpoints" / "last.ckpt")["state_dict"])
    # no teacher and no learned patterns in the checkpoint: the BWN's keys and the frozen codebooks only
    assert set(state) - bwn_keys == {k for k in state if k.endswith(".codebook")}
    if settings.get("qbn.method") == "learned":
        assert summary["qbn_learned"]["frozen"] and any(k.endswith(".codebook") for k in state)
    if settings.get("qbn.codebook") == "shared":
        books = {tuple(v.tolist()) for k, v in state.items() if k.endswith(".codebook")}
        assert len(books) == 1

    trained, _ = model_from_checkpoint(run_dir, require_binary=False)
    packed = load(export(run_dir))
    x, y = _images()
    with torch.no_grad():
        a, b = trained(x), packed(x)
    assert torch.equal(a.argmax(1), b.argmax(1))
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    # last.ckpt is the model the run tested (frozen before its last validation)
    assert float((a[: len(y)].argmax(1) == y).float().mean()) == pytest.approx(summary["test/acc"], abs=1e-6)


def test_learned_run_resumes_before_and_after_its_freeze(bwn_run, tmp_path):
    """Stopped in epoch 2, the checkpoint holds patterns (before the freeze): the resumed run restores
    them and their optimizer group; a finished run (frozen, group dropped) trains on too."""
    run = tmp_path / "run"
    opts = ("qbn.bits=4", "qbn.method=learned", f"qbn.from_ckpt={bwn_run}", "qbn.distill.weight=0.5",
            "+callbacks.stop._target_=tests.stop_callbacks.SigtermAtEpochFromEnv")
    proc = run_cli("qbn.train", *COMMON, f"hydra.run.dir={run}", *opts, "trainer.max_epochs=2",
                   env={"QBN_TEST_SIGTERM_EPOCH": "1"})
    assert proc.returncode != 0
    state = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    assert any(k.endswith(".patterns") for k in state) and not any(k.endswith(".codebook") for k in state)
    for epochs in (2, 3):
        proc = _train(run, *opts, f"trainer.max_epochs={epochs}", f"resume={run}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["epochs"] == epochs and summary["qbn_learned"]["frozen"]
        state = load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
        assert not any(k.endswith(".patterns") for k in state) and any(k.endswith(".codebook") for k in state)
