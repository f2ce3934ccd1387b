"""The real study at smoke size (digits, every stage and the report): slow (minutes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from qbn.study.plan import STAGES
from qbn.testing.runs import run_cli

pytestmark = pytest.mark.slow


def _summaries(study: Path) -> dict[str, float]:
    return {str(p.relative_to(study)): p.stat().st_mtime_ns for p in study.glob("*/*/summary.json")}


def test_smoke_study_runs_every_stage_then_trains_nothing_then_reruns_what_failed(tmp_path):
    env = {"QBN_OUTPUT_DIR": str(tmp_path)}
    first = run_cli("qbn.study", "scale=smoke", env=env, timeout=3600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    study = tmp_path / "study" / "smoke"
    results = (study / "RESULTS.md").read_text()
    for title in ("Claim 1", "Claim 2: signs settle early", "Claim 2: primary sub-networks", "Claim 3", "Claim 4"):
        assert f"## {title}" in results
    assert "No completed" not in results and "No packed" not in results
    assert not re.search(r"\[([+-]?\d+(?:\.\d+)?), \1\]", results)   # no interval of zero width printed as one
    cited = json.loads((study / "numbers.json").read_text())
    for key in ("claim1.adam_cosine.nobn.verdict", "claim2.signs.adam_cosine.bn.e3.E_0.90_frac",
                "claim2.rewind.e2.k_0.5.freeze.minus_trunk", "claim2.rewind.e3.k_0.5.init.minus_trunk",
                "claim3.adam_cosine.bn.xnor.e3.minus_null", "claim4.e2.f1.learned.d0.n4.minus_control",
                "claim4.e2.f1.topk.d0.5.n4.minus_control", "claim4.e2.f1.goal.verdict"):
        assert key in cited and cited[key] != "-", key
    packed = [p.parent for p in study.glob("qbn/*/summary.json")]   # claim 4's numbers come from the packed file
    assert packed
    for run in packed:
        s = json.loads((run / "summary.json").read_text())
        assert (run / "model.qbn").stat().st_size == s["export/file_bytes"] and 0 < s["export/test_acc"] <= 1

    before = _summaries(study)
    second = run_cli("qbn.study", "scale=smoke", env=env, timeout=3600)
    assert second.returncode == 0, second.stderr[-3000:]
    for stage in STAGES:
        assert re.search(rf"^{stage}: (\d+)/\1 done, 0 to run$", second.stdout, re.M), second.stdout
    assert _summaries(study) == before            # nothing trained, no run directory touched
    assert (study / "RESULTS.md").read_text() == results

    # a failed run runs again; a run killed mid-way (status still "running") resumes from last.ckpt
    failed, killed = study / "scaling" / "adam_cosine-nobn-none-s1", study / "signs" / "adam_cosine-e3-s0"
    s = json.loads((failed / "summary.json").read_text())
    (failed / "summary.json").write_text(json.dumps({**s, "status": "failed", "error": "RuntimeError: injected"}))
    ckpt = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["epoch"] == 2   # 3 epochs: resuming trains the last one
    s = json.loads((killed / "summary.json").read_text())
    (killed / "summary.json").write_text(json.dumps({**s, "status": "running"}))
    third = run_cli("qbn.study", "scale=smoke", "stages=[scaling,signs]", env=env, timeout=3600)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "scaling: 7/8 done, 1 to run (1 failed)" in third.stdout
    assert "signs: 1/2 done, 1 to run (1 interrupted)" in third.stdout
    assert "signs/adam_cosine-e3-s0: completed (resumed" in third.stdout
    assert "resuming from" in (study / "signs" / "logs" / "adam_cosine-e3-s0.log").read_text()
    assert json.loads((failed / "summary.json").read_text())["status"] == "completed"

    regenerated = run_cli("qbn.study", "report", str(study))
    assert regenerated.returncode == 0
