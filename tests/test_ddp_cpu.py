"""Lightning DDP on 2 CPU processes (gloo) through a study stage: the distributed path without a
GPU. SyncBatchNorm stays off on CPUs, one rank writes each file, and the instruments' files agree
with the (synced) weights in the checkpoint. Slow: two processes train."""

from __future__ import annotations

import json

import pytest
import torch

from qbn.signs import load_snapshot
from qbn.testing.runs import run_cli

pytestmark = pytest.mark.slow


def test_two_process_cpu_ddp_completes_a_study_run(tmp_path):
    result = run_cli("qbn.study", "scale=smoke", "stages=[scaling]", "only=scaling/adam_cosine-bn-xnor-s0",
                     "report=false", "jobs=1", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                     env={"QBN_OUTPUT_DIR": str(tmp_path)}, timeout=1800)
    run = tmp_path / "study" / "smoke" / "scaling" / "adam_cosine-bn-xnor-s0"
    log = (run.parent / "logs" / "adam_cosine-bn-xnor-s0.log").read_text()
    assert result.returncode == 0, result.stdout[-2000:] + log[-4000:]
    assert "scaling: 1/1 done, 0 to run" in result.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 2
    assert "signs/E_0.90" in summary and "kernels/entropy" in summary   # the instruments' totals reached rank 0's file
    assert not list(run.rglob("*.tmp")), "a temporary file was left behind"
    assert "Initializing distributed: GLOBAL_RANK: 0, MEMBER: 1/2" in log   # two processes trained
    assert "[ERROR]" not in log and "optimized_metric" not in log   # every rank has the run's test accuracy
    # Lightning's sync_dist advice, once per layer and statistic of the instruments, is quieted; the losses' remain
    assert log.count("It is recommended to use `self.log(") <= 6, log.count("It is recommended to use `self.log(")
    # the last sign snapshot is the sign of the checkpoint's latent weights (identical on both ranks)
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    snapshot = load_snapshot(run / "signs" / "epoch_002.pt")
    assert snapshot
    for name, signs in snapshot.items():
        weight = state[f"net.{name}.weight"]
        assert torch.equal(signs.bool(), weight >= 0), name
