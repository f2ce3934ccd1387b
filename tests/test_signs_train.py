"""Sign instruments in real training runs through `python -m qbn.train` (slow: about a minute
each on 2 CPU cores): the run directory gets signs/, signs.json, report.md and figures, and a run
stopped after epoch 1 and resumed from last.ckpt gives the same sign curves and signs.json as an
uninterrupted run with the same seed."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from qbn.testing.runs import ROOT, run_cli, tiny

# with the report and kernel figures that TINY (debug=smoke) leaves out
COMMON = tiny("trainer.max_epochs=3", "trainer.accelerator=cpu", "trainer.log_every_n_steps=1", "seed=3",
              "report=true", "callbacks.kernel_stats.figures=true")
# the runs find the tests' callbacks (tests.stop_callbacks) on the path
TESTS_ON_PATH = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def train(*overrides: str) -> subprocess.CompletedProcess:
    proc = run_cli("qbn.train", *COMMON, *overrides, env=TESTS_ON_PATH)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def epoch_curves(run_dir: Path) -> dict[str, dict[int, str]]:
    """Every signs/ and weights/ column of metrics.csv by epoch (text, compared exactly)."""
    curves: dict[str, dict[int, str]] = {}
    with open(run_dir / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                if v and (k.startswith("signs/flip_ratio") or k.startswith("weights/")):
                    curves.setdefault(k, {})[int(row["epoch"])] = v
    return curves


@pytest.mark.slow
def test_short_run_writes_signs_report_and_figures(tmp_path):
    run = tmp_path / "run"
    train(f"hydra.run.dir={run}")
    assert sorted(p.name for p in (run / "signs").iterdir()) == [f"epoch_00{e}.pt" for e in range(4)] + \
        ["last_flip_step.pt"]
    signs = json.loads((run / "signs.json").read_text())
    assert signs["steps"]["total_steps"] == json.loads((run / "summary.json").read_text())["global_step"]
    assert signs["epochs"] == [0, 1, 2, 3] and signs["problems"] == []
    summary = json.loads((run / "summary.json").read_text())
    assert summary["signs/E_0.95"] == signs["overall"]["E_0.95"] and summary["status"] == "completed"
    curves = epoch_curves(run)
    assert set(curves["signs/flip_ratio"]) == {0, 1, 2}
    assert any(k.startswith("signs/flip_ratio/layer") for k in curves)
    assert any(k.startswith("weights/alpha_mean/") for k in curves)
    report = (run / "report.md").read_text()
    for name in ("flip_ratio", "sign_distance", "last_flip", "freeze_epochs", "stable_steps", "weights"):
        assert (run / "figures" / f"{name}.png").exists() and f"figures/{name}.png" in report


@pytest.mark.slow
def test_resumed_run_gives_the_same_sign_curves(tmp_path):
    full, split = tmp_path / "full", tmp_path / "split"
    # a job killed (SIGTERM) in its second epoch, then resumed; the same callbacks in all three runs,
    # since a resume may not change the run's settings
    stop = "+callbacks.stop._target_=tests.stop_callbacks.SigtermAtEpochFromEnv"
    train(f"hydra.run.dir={full}", stop)
    killed = run_cli("qbn.train", *COMMON, f"hydra.run.dir={split}", stop,
                     env={**TESTS_ON_PATH, "QBN_TEST_SIGTERM_EPOCH": "1"})
    assert killed.returncode != 0 and json.loads((split / "summary.json").read_text())["status"] == "interrupted"
    assert sorted(p.name for p in (split / "signs").iterdir()) == ["epoch_000.pt", "epoch_001.pt", "last_flip_step.pt"]
    train(f"resume={split}", stop)
    a, b = epoch_curves(full), epoch_curves(split)
    assert a.keys() == b.keys() and a == b
    sa, sb = (json.loads((d / "signs.json").read_text()) for d in (full, split))
    sa.pop("run_dir"), sb.pop("run_dir")
    assert sa == sb
    for e in range(4):
        ta = torch.load(full / "signs" / f"epoch_00{e}.pt", weights_only=True)
        tb = torch.load(split / "signs" / f"epoch_00{e}.pt", weights_only=True)
        assert torch.equal(ta["bits"], tb["bits"])
    la, lb = (torch.load(d / "signs" / "last_flip_step.pt", weights_only=True) for d in (full, split))
    assert la["total_steps"] == lb["total_steps"] > 0
    assert all(torch.equal(la["last_flip"][n], lb["last_flip"][n]) for n in la["last_flip"])
