"""The study's plan and runner without training: which runs each stage has, what a second
invocation does (nothing for complete runs, the failed and interrupted ones again), and what a
stage whose inputs are missing says. The real smoke study: tests/test_study_smoke.py (slow)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from qbn.config import CONFIG_DIR
from qbn.errors import QbnError
from qbn.study import runner as runner_module
from qbn.study.plan import plan
from qbn.study.runner import Runner
from qbn.testing.runs import compose_cfg


def study_cfg(tmp_path: Path, *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR / "study"), version_base="1.3"):
        return compose("study", overrides=[f"dir={tmp_path / 'study'}", *overrides])


def test_smoke_plan_covers_every_stage_and_each_run_composes(tmp_path):
    cfg = study_cfg(tmp_path, "scale=smoke")
    stages = plan(cfg)
    assert {k: len(v) for k, v in stages.items()} == {"scaling": 12, "signs": 4, "rewind": 8, "qbn": 4}
    trunk = next(j for j in stages["scaling"] if j.name == "adam_cosine-xnor-s0")
    assert "rewind=trunk" in trunk.overrides and "rewind.save_weights=[1]" in trunk.overrides
    for job in stages["rewind"] + stages["qbn"]:
        assert job.needs == [f"scaling/adam_cosine-xnor-s{job.name[1]}"]
    for jobs in stages.values():   # every override names a real option of qbn.train
        for job in jobs:
            compose_cfg(tmp_path / "run", job.overrides)


def test_cpu_plan_has_three_seeds_per_row(tmp_path):
    rows: dict[str, set] = {}
    for jobs in plan(study_cfg(tmp_path, "scale=cpu")).values():
        for job in jobs:
            row = re.sub(r"(^|-)s\d+(-|$)", r"\1\2", job.name)
            rows.setdefault(f"{job.stage}/{row}", set()).add(job.name)
    assert len(rows) > 20 and all(len(v) >= 3 for v in rows.values())


def test_with_wandb_every_run_is_in_one_project_grouped_by_stage_and_tagged(tmp_path):
    cfg = study_cfg(tmp_path, "scale=smoke", "logger=wandb")
    for stage, jobs in plan(cfg).items():
        run = compose_cfg(tmp_path / "run", jobs[0].overrides)
        assert run.logger.wandb.project == "qbn-study"
        assert run.logger.wandb.group == stage
        assert list(run.logger.wandb.tags) == [f"recipe_{jobs[0].recipe}", "scale_smoke"]


def _fake_run(run_dir: Path, status: str = "completed", **extra) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps({"status": status, "test/acc": 0.5, "wall_s": 3.0, "epochs": 2,
                                                      "seed": 0, **extra}))


class FakeTrain:
    """Stands in for `python -m qbn.train`: records the run it was asked for and completes it."""

    def __init__(self):
        self.runs: list[str] = []

    def __call__(self, command, out, env):
        run_dir = Path(next(a for a in command if a.startswith("hydra.run.dir=")).split("=", 1)[1])
        self.runs.append(f"{run_dir.parent.name}/{run_dir.name}")
        _fake_run(run_dir)
        return 0


def test_second_invocation_trains_nothing_complete_and_reruns_failed_and_interrupted(tmp_path, monkeypatch, capsys):
    cfg = study_cfg(tmp_path, "scale=smoke", "stages=[scaling]", "report=false")
    fake = FakeTrain()
    monkeypatch.setattr(runner_module, "_run_process", fake)
    for job in plan(cfg)["scaling"]:
        _fake_run(tmp_path / "study" / job.key)
    assert Runner(cfg).run() == 0
    assert fake.runs == []
    out = capsys.readouterr().out
    assert "scaling: 12/12 done, 0 to run" in out
    assert not (tmp_path / "study" / "study.json").exists()   # an invocation that ran nothing is not cited

    _fake_run(tmp_path / "study" / "scaling" / "sgd_step-none-s1", status="failed", error="RuntimeError: boom")
    _fake_run(tmp_path / "study" / "scaling" / "adam_cosine-fp-s0", status="running")   # killed: no process left
    assert Runner(cfg).run() == 0
    assert sorted(fake.runs) == ["scaling/adam_cosine-fp-s0", "scaling/sgd_step-none-s1"]
    out = capsys.readouterr().out
    assert "scaling: 10/12 done, 2 to run (1 interrupted, 1 failed)" in out
    assert "scaling: 12/12 done, 0 to run" in out
    (invocation,) = json.loads((tmp_path / "study" / "study.json").read_text())["invocations"]
    assert invocation["commit"] and "wall_s" in invocation


def test_a_failed_run_is_reported_and_the_exit_code_says_so(tmp_path, monkeypatch, capsys):
    cfg = study_cfg(tmp_path, "scale=smoke", "stages=[scaling]", "report=false")

    def failing(command, out, env):
        run_dir = Path(next(a for a in command if a.startswith("hydra.run.dir=")).split("=", 1)[1])
        _fake_run(run_dir, status="failed", error="ValueError: bad")
        return 1

    monkeypatch.setattr(runner_module, "_run_process", failing)
    assert Runner(cfg).run() == 1
    out = capsys.readouterr().out
    assert "scaling/adam_cosine-none-s0: failed: ValueError: bad" in out
    assert "study: 12 runs failed" in out and "the same command runs them again" in out


def test_a_stage_whose_trunks_are_missing_says_what_to_run_first(tmp_path, monkeypatch, capsys):
    cfg = study_cfg(tmp_path, "scale=smoke", "stages=[rewind]", "report=false")
    fake = FakeTrain()
    monkeypatch.setattr(runner_module, "_run_process", fake)
    assert Runner(cfg).run() == 1
    assert fake.runs == []
    out = capsys.readouterr().out
    assert ("rewind/s0-winit-epoch1: waits for scaling/adam_cosine-xnor-s0 (not complete; the scaling stage runs them: "
            "python -m qbn.study scale=smoke 'stages=[scaling]')") in out


def test_unknown_stage_is_one_clear_error(tmp_path):
    with pytest.raises(runner_module.StudyError, match="unknown stage scalin; choose from scaling, signs, rewind, qbn"):
        Runner(study_cfg(tmp_path, "scale=smoke", "stages=[scalin]"))


def test_sigterm_stops_every_run_and_the_study_without_waiting(tmp_path, monkeypatch):
    """A cluster's time limit (SIGTERM) stops the study: its side-by-side runs get SIGTERM too
    (qbn.train then records them as interrupted), and no further run starts."""
    cfg = study_cfg(tmp_path, "scale=smoke", "stages=[scaling]", "report=false", "jobs=2")
    runner = Runner(cfg)
    started = []

    def sleeper(job):
        started.append(job.key)
        return [sys.executable, "-c", "import time; time.sleep(300)"]

    monkeypatch.setattr(runner, "command", sleeper)
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    t0 = time.time()
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        timer.cancel()
    assert time.time() - t0 < 60          # the sleeping runs were stopped, not waited for
    assert len(set(started)) == 2         # the two running; none started after the signal
    assert not runner_module.LIVE


# Stands in for `python -m qbn.train` in a submitted job (a real process): completes its run, or
# fails it when the run's name says so.
_JOB = """import json, sys, pathlib
run = pathlib.Path(sys.argv[1]); run.mkdir(parents=True, exist_ok=True)
ok = "-none-" not in run.name
print("training", run.name)
(run / "summary.json").write_text(json.dumps({"status": "completed" if ok else "failed", "error": "ValueError: bad",
                                              "test/acc": 0.5, "wall_s": 1.0, "epochs": 1, "seed": 0}))
sys.exit(0 if ok else 1)
"""


def test_launcher_submitit_runs_each_run_as_a_job_and_reports_its_end(tmp_path, monkeypatch, capsys):
    """launcher=submitit_local sends each run through submitit (the cluster path: launcher=slurm
    differs only in submitit's cluster), `jobs` at a time; the job's output is in the run's log."""
    cfg = study_cfg(tmp_path, "scale=smoke", "stages=[scaling]", "report=false", "launcher=submitit_local", "jobs=2",
                    "only=scaling/adam_cosine-*-s0")
    monkeypatch.setattr(Runner, "command", lambda self, job: [sys.executable, "-c", _JOB, str(self.dir / job.key)])
    monkeypatch.setattr(runner_module, "_run_process", lambda *a: pytest.fail("a local process with launcher=submitit_local"))
    assert Runner(cfg).run() == 1   # the 'none' run failed
    out = capsys.readouterr().out
    study = tmp_path / "study"
    assert "scaling: 0/3 done, 3 to run" in out
    for scheme in ("xnor", "fp"):
        assert f"scaling/adam_cosine-{scheme}-s0: completed (test acc 50.00 %" in out
        assert f"training adam_cosine-{scheme}-s0" in (study / "scaling" / "logs" / f"adam_cosine-{scheme}-s0.log").read_text()
    assert "scaling/adam_cosine-none-s0: failed: ValueError: bad" in out
    assert any((study / ".submitit").iterdir())   # submitit's job files


def test_unknown_launcher_or_slurm_without_a_cluster_is_one_clear_error(tmp_path):
    with pytest.raises(runner_module.StudyError, match="launcher=pbs: choose local, slurm or submitit_local"):
        Runner(study_cfg(tmp_path, "scale=smoke", "launcher=pbs"))
    if shutil.which("srun") is None:   # this machine: no SLURM
        with pytest.raises(QbnError, match=r"launcher=slurm: .*srun.* Run the study on the cluster's login node, or launcher=local here"):
            Runner(study_cfg(tmp_path, "scale=smoke", "launcher=slurm", "submitit.slurm_partition=gpu"))


def test_study_options_stay_the_studys_and_the_rest_go_to_every_run():
    from qbn.study.__main__ import split_overrides

    assert split_overrides(["scale=smoke", "launcher=slurm", "submitit.mem_gb=8", "jobs=4", "trainer=gpu",
                            "dataset.train_subset=5000"]) == [
        "scale=smoke", "launcher=slurm", "submitit.mem_gb=8", "jobs=4", 'train=["trainer=gpu","dataset.train_subset=5000"]']
