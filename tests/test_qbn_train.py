"""QBN through the real entry points on digits (slow: tens of seconds on 2 CPU cores): train a
BWN, fine-tune a QBN from its checkpoint, check the codebooks in the saved checkpoint, the
summary and kernels.json, and the one-line messages for bad input."""

from __future__ import annotations

import json

import pytest

from qbn.testing.runs import check_qbn_run, run_cli, tiny

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


def test_qbn_finetune_from_bwn(bwn_run, tmp_path):
    run_dir = tmp_path / "qbn"
    proc = _train(run_dir, "qbn.bits=4", f"qbn.from_ckpt={bwn_run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    stats = check_qbn_run(run_dir, summary, bits=4)
    assert "only 3x3" in summary["qbn_note"]
    # the offline command reads the QBN checkpoint (quantized signs) the same way
    out = run_cli("qbn.kernels", str(run_dir), "--out", str(tmp_path / "offline"))
    assert out.returncode == 0, out.stderr
    offline = json.loads((tmp_path / "offline" / "kernels.json").read_text())
    assert offline["overall"]["histogram"] == stats["overall"]["histogram"]


@pytest.mark.parametrize("override, message", [
    ("qbn.bits=12", "from 1 to 9"),
    ("qbn.budget=0.01", "smallest codebooks allow"),
    ("qbn.layers=[fc]", "QBN is off"),
    ("qbn.bits=4 qbn.layers=[fc]", "not a binary layer"),
])
def test_bad_input_one_line(bwn_run, tmp_path, override, message):
    proc = _train(tmp_path / "bad", *override.split(), f"qbn.from_ckpt={bwn_run}")
    assert proc.returncode == 1
    assert "qbn: " in proc.stderr and message in proc.stderr and "Traceback" not in proc.stderr


def test_non_bwn_checkpoint_one_line(tmp_path):
    fp = tmp_path / "fp"
    assert _train(fp, "binary=fp").returncode == 0
    proc = _train(tmp_path / "q", "qbn.bits=4", f"qbn.from_ckpt={fp}")
    assert proc.returncode == 1 and "not a BWN" in proc.stderr and "Traceback" not in proc.stderr
