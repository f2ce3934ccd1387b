"""The study's plan and runner without training: which runs each stage has, what a second
invocation does (nothing for complete runs, the failed and interrupted ones again), and what a
stage whose inputs are missing says. The real smoke study: tests/test_study_smoke.py (slow)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from qbn.config import CONFIG_DIR
from qbn.errors import QbnError
from qbn.schema import compose_config
from qbn.study import runner as runner_module
from qbn.study.plan import Planner, plan
from qbn.study.runner import Runner
from qbn.testing.runs import compose_cfg


def study_cfg(tmp_path: Path, *overrides: str):
    return compose_config(CONFIG_DIR / "study", "study", [f"dir={tmp_path / 'study'}", *overrides])


def test_smoke_plan_covers_every_stage(tmp_path):
    stages = plan(study_cfg(tmp_path, "scale=smoke"))
    assert {k: len(v) for k, v in stages.items()} == {"scaling": 8, "signs": 2, "rewind": 8, "qbn": 12}
    trunk = next(j for j in stages["scaling"] if j.name == "adam_cosine-bn-xnor-s0")
    assert "rewind=trunk" in trunk.overrides and "rewind.save_shares=[0.25,0.5]" in trunk.overrides
    assert (
        "model.backbone.norm=none"
        in next(j for j in stages["scaling"] if j.name == "adam_cosine-nobn-xnor-s0").overrides
    )
    long = next(j for j in stages["signs"] if j.name == "adam_cosine-e3-s1")
    assert "rewind=trunk" in long.overrides and "trainer.max_epochs=3" in long.overrides
    for job in stages["rewind"]:
        seed, epochs = job.name.split("-")[1][1:], int(job.name.split("-")[0][1:])
        trunk = f"scaling/adam_cosine-bn-xnor-s{seed}" if epochs == 2 else f"signs/adam_cosine-e3-s{seed}"
        # retraining needs the trunk's snapshots; freezing is the trunk's own run, stopped from changing signs at K
        assert job.needs == ([] if "-freeze-" in job.name else [trunk]), job.name
    freeze = next(j for j in stages["rewind"] if j.name == "e2-s0-freeze-k0.5")
    assert {"rewind=freeze", "rewind.freeze_signs_at=share:0.5", "trainer.max_epochs=2", "seed=0"} <= set(
        freeze.overrides
    )
    qbn = {j.name: j for j in stages["qbn"]}
    assert sorted(n for n in qbn if n.startswith("e2-f1-s0")) == [
        "e2-f1-s0-control-d0",
        "e2-f1-s0-control-d0.5",
        "e2-f1-s0-learned-d0-n4",
        "e2-f1-s0-learned-lr0.005-d0-n4",
        "e2-f1-s0-topk-d0-n4",
        "e2-f1-s0-topk-d0.5-n4",
    ]
    assert {"qbn.method=learned", "qbn.learned_lr=0.005"} <= set(qbn["e2-f1-s0-learned-lr0.005-d0-n4"].overrides)
    control = qbn["e2-f1-s0-control-d0.5"].overrides  # the matched control: n = 9, the same teacher and fine-tune
    assert {"qbn.bits=9", "qbn.method=topk", "qbn.distill.weight=0.5", "trainer.max_epochs=1"} <= set(control)
    assert not any(o.startswith("qbn.distill") for o in qbn["e2-f1-s0-control-d0"].overrides)
    assert all(
        j.export and j.needs == ["scaling/adam_cosine-bn-xnor-s" + j.name.split("-")[2][1:]] for j in qbn.values()
    )


@pytest.mark.slow  # composes every run of every scale (about 9 s); CI's slow step runs it
def test_each_planned_run_composes(tmp_path):
    """Every override names a real option of qbn.train (needs the norm, share, freeze and sub-bit options)."""
    probe = compose_cfg(tmp_path / "probe", [])
    if "norm" not in probe.model.get("backbone", {}) or "method" not in probe.qbn:
        pytest.skip("the study's mechanisms (model.backbone.norm, rewind shares, qbn.method) are not merged yet")
    for jobs in plan(study_cfg(tmp_path, "scale=smoke")).values():
        for job in jobs:
            compose_cfg(tmp_path / "run", job.overrides)


@pytest.mark.parametrize("scale, hours", [("cpu", 2.5), ("cpu_long", 8)])
def test_plan_command_prints_runs_and_cost_and_a_k_not_saved_is_one_line(tmp_path, scale, hours):
    from qbn.study.plan_cost import cpu_seconds, plan_report

    cfg = study_cfg(tmp_path, f"scale={scale}")
    stages = plan(cfg)
    total = sum(cpu_seconds(j, cfg.scale.cost) for jobs in stages.values() for j in jobs)
    c = cfg.scale.cost  # by hand: a run, its epochs (1.35 x with a teacher), the packing
    hand = sum(
        c.run_s
        + j.epochs * c.epoch_s * (c.distill if any(o.startswith("qbn.distill.weight=") for o in j.overrides) else 1)
        + (c.pack_s if j.export else 0)
        for jobs in stages.values()
        for j in jobs
    )
    assert total == pytest.approx(hand)
    text = plan_report(cfg)
    runs = sum(len(v) for v in stages.values())
    assert f"total: {runs} runs" in text and f"{total:,.0f} CPU s" in text
    assert total / 3600 / 2 * 1.26 < hours  # on 2 cores, with the last study's measured slow-down
    seeds = {stage: {o for j in jobs for o in j.overrides if o.startswith("seed=")} for stage, jobs in stages.items()}
    assert len(seeds["scaling"]) == 5 and len(seeds["rewind"]) == len(seeds["qbn"]) == 3  # claim 1: 5 seeds
    with pytest.raises(QbnError, match=r"rewind K=0.3 is not in rewind.save_shares"):
        plan(study_cfg(tmp_path, "scale=smoke", "scale.rewind.grid=[{epochs: 2, K: [0.3], controls: [], freeze: []}]"))


def test_with_wandb_every_run_is_in_one_project_grouped_by_stage_and_tagged(tmp_path):
    cfg = study_cfg(tmp_path, "scale=smoke", "logger=wandb")
    planner = Planner(cfg)
    for stage, jobs in plan(cfg).items():
        run = compose_cfg(tmp_path / "run", planner.base(stage, jobs[0].recipe))  # the overrides every run starts with
        assert run.logger.wandb.project == "qbn-study"
        assert run.logger.wandb.group == stage
        assert list(run.logger.wandb.tags) == [f"recipe_{jobs[0].recipe}", "scale_smoke"]


def _fake_run(run_dir: Path, status: str = "completed", **extra) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(
        json.dumps({"status": status, "test/acc": 0.5, "wall_s": 3.0, "epochs": 2, "seed": 0, **extra})
    )


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
    assert "scaling: 8/8 done, 0 to run" in out
    assert not (tmp_path / "study" / "study.json").exists()  # an invocation that ran nothing is not cited

    _fake_run(tmp_path / "study" / "scaling" / "adam_cosine-nobn-none-s1", status="failed", error="RuntimeError: boom")
    _fake_run(tmp_path / "study" / "scaling" / "adam_cosine-bn-xnor-s0", status="running")  # killed: no process left
    assert Runner(cfg).run() == 0
    assert sorted(fake.runs) == ["scaling/adam_cosine-bn-xnor-s0", "scaling/adam_cosine-nobn-none-s1"]
    out = capsys.readouterr().out
    assert "scaling: 6/8 done, 2 to run (1 interrupted, 1 failed)" in out
    assert "scaling: 8/8 done, 0 to run" in out
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
    assert "scaling/adam_cosine-bn-none-s0: failed: ValueError: bad" in out
    assert "study: 8 runs failed" in out and "the same command runs them again" in out


def test_a_stage_whose_trunks_are_missing_says_what_to_run_first(tmp_path, monkeypatch, capsys):
    cfg = study_cfg(tmp_path, "scale=smoke", "stages=[rewind]", "report=false")
    fake = FakeTrain()
    monkeypatch.setattr(runner_module, "_run_process", fake)
    assert Runner(cfg).run() == 1
    # freezing needs no trunk: those ran (and only those; an empty list would say nothing)
    assert fake.runs and all("-freeze-" in r for r in fake.runs), fake.runs
    out = capsys.readouterr().out
    assert (
        "rewind/e2-s0-init-k0.5: waits for scaling/adam_cosine-bn-xnor-s0 (not complete; the scaling stage runs them: "
        "python -m qbn.study scale=smoke 'stages=[scaling]')"
    ) in out


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
    assert time.time() - t0 < 60  # the sleeping runs were stopped, not waited for
    assert len(set(started)) == 2  # the two running; none started after the signal
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
    cfg = study_cfg(
        tmp_path,
        "scale=smoke",
        "stages=[scaling]",
        "report=false",
        "launcher=submitit_local",
        "jobs=2",
        "only=scaling/adam_cosine-bn-*-s0",
    )
    monkeypatch.setattr(Runner, "command", lambda self, job: [sys.executable, "-c", _JOB, str(self.dir / job.key)])
    monkeypatch.setattr(
        runner_module, "_run_process", lambda *a: pytest.fail("a local process with launcher=submitit_local")
    )
    assert Runner(cfg).run() == 1  # the 'none' run failed
    out = capsys.readouterr().out
    study = tmp_path / "study"
    assert "scaling: 0/2 done, 2 to run" in out
    assert "scaling/adam_cosine-bn-xnor-s0: completed (test acc 50.00 %" in out
    assert "training adam_cosine-bn-xnor-s0" in (study / "scaling" / "logs" / "adam_cosine-bn-xnor-s0.log").read_text()
    assert "scaling/adam_cosine-bn-none-s0: failed: ValueError: bad" in out
    assert any((study / ".submitit").iterdir())  # submitit's job files


def test_unknown_launcher_or_slurm_without_a_cluster_is_one_clear_error(tmp_path):
    with pytest.raises(runner_module.StudyError, match="launcher=pbs: choose local, slurm or submitit_local"):
        Runner(study_cfg(tmp_path, "scale=smoke", "launcher=pbs"))
    if shutil.which("srun") is None:  # this machine: no SLURM
        with pytest.raises(
            QbnError,
            match=r"launcher=slurm: .*srun.* Run the study on the cluster's login node, or launcher=local here",
        ):
            Runner(study_cfg(tmp_path, "scale=smoke", "launcher=slurm", "submitit.slurm_partition=gpu"))


def test_study_options_stay_the_studys_and_the_rest_go_to_every_run():
    from qbn.study.__main__ import split_overrides

    assert split_overrides(
        ["scale=smoke", "launcher=slurm", "submitit.mem_gb=8", "jobs=4", "trainer=gpu", "dataset.train_subset=5000"]
    ) == [
        "scale=smoke",
        "launcher=slurm",
        "submitit.mem_gb=8",
        "jobs=4",
        'train=["trainer=gpu","dataset.train_subset=5000"]',
    ]


@pytest.mark.slow  # a subprocess or a whole report (seconds); CI's slow step runs it
def test_plan_cli_prints_the_plan_and_a_bad_override_is_one_line(tmp_path):
    from qbn.testing.runs import run_cli

    ok = run_cli("qbn.study", "plan", "scale=smoke", env={"QBN_OUTPUT_DIR": str(tmp_path)})
    assert ok.returncode == 0, ok.stderr
    assert "total: 30 runs" in ok.stdout and "rewind: 8 runs" in ok.stdout
    assert not any(tmp_path.iterdir())   # nothing made
    bad = run_cli("qbn.study", "plan", "scale=nope")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "qbn: study plan: scale=nope: there is no scale named 'nope'; choose one of cpu, cpu_long, full, smoke"]


# ---- nothing lost: the study's own options and damaged runs, before anything trains ----------------

@pytest.mark.parametrize("override, message", [
    ("report=maybe", "report='maybe': not a valid bool; it takes true or false"),
    ("jobs=two", "jobs='two'"),
    ("logger=tensorboard", "logger='tensorboard'"),
])
def test_the_studys_own_options_are_typed_before_anything_is_written(tmp_path, override, message):
    from qbn.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Runner(study_cfg(tmp_path, "scale=smoke", override))
    assert not (tmp_path / "study").exists()


def test_a_damaged_run_is_named_and_the_study_stops_before_training(tmp_path, monkeypatch):
    runner = Runner(study_cfg(tmp_path, "scale=smoke", "stages=[scaling]"))
    run_dir = tmp_path / "study" / runner.plan["scaling"][1].key
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text("{")
    launched = []
    monkeypatch.setattr(runner_module, "_run_process", lambda *a, **k: launched.append(a) or 0)
    with pytest.raises(runner_module.StudyError, match="summary.json is damaged") as e:
        runner.run()
    assert str(run_dir / "summary.json") in str(e.value) and "\n" not in str(e.value)
    assert launched == [] and (run_dir / "summary.json").read_text() == "{"
    assert not (tmp_path / "study" / "study.json").exists()   # no invocation recorded: nothing ran


@pytest.mark.slow  # a subprocess or a whole report (seconds); CI's slow step runs it
def test_study_command_with_a_mistyped_option_is_one_line_and_makes_nothing(tmp_path):
    from qbn.testing.runs import run_cli

    bad = run_cli("qbn.study", "scale=smoke", "report=maybe", env={"QBN_OUTPUT_DIR": str(tmp_path)})
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "qbn: report='maybe': not a valid bool; it takes true or false"
    ], bad.stderr
    assert not any(tmp_path.iterdir())
