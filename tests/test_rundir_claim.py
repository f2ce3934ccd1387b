"""RunDir's behaviour without training: the claim (what a command may do with a directory), the
protection (start_over clears exactly the declared outputs), summary.json's in-progress marker and
how a run's end is recorded, and the notes a refused sweep job leaves. The trained cases are in
test_run_integrity.py and test_nothing_lost.py."""

from __future__ import annotations

import pytest
from hydra.types import RunMode
from omegaconf import OmegaConf

from qbn.errors import RunDirError
from qbn.run_guard import RUN_SETTINGS
from qbn.run_outputs import RUN_OUTPUTS
from qbn.rundir import RunDir
from qbn.testing.rundirs import assert_unchanged, files
from qbn.testing.runs import compose_cfg, tiny


def _saved_run(root, status: str, *overrides: str) -> RunDir:
    """A run directory as `take` leaves it (the unresolved config in .hydra/) with a summary of `status`."""
    run = RunDir(root)
    run.save_config(compose_cfg(run.root, tiny(*overrides)), None, list(overrides))
    run.write_summary({"status": status, "epochs": 1})
    return run


def test_a_completed_run_is_skipped_with_its_settings_and_refused_with_others(tmp_path):
    run = _saved_run(tmp_path / "run", "completed", "seed=3")
    before = files(run.root)
    claim = run.check_can_train(compose_cfg(run.root, tiny("seed=3", "dataset.num_workers=2")), RUN_SETTINGS)
    assert (claim.action, claim.previous["status"], claim.protects) == ("skip", "completed", True)
    with pytest.raises(RunDirError, match=r"completed run with other settings: seed \(3 there, 4 now\)"):
        run.check_can_train(compose_cfg(run.root, tiny("seed=4")), RUN_SETTINGS)
    fresh = run.check_can_train(compose_cfg(run.root, tiny("seed=4", "overwrite=true")), RUN_SETTINGS)
    assert (fresh.action, fresh.checkpoint, fresh.protects) == ("fresh", None, True)  # taken only before training
    assert_unchanged(run.root, before)   # deciding reads only


def test_an_unfinished_run_resumes_from_its_last_checkpoint_or_starts_over_without_one(tmp_path):
    run = _saved_run(tmp_path / "run", "interrupted")
    assert run.check_can_train(compose_cfg(run.root, tiny()), RUN_SETTINGS).action == "fresh"
    run.last_ckpt.parent.mkdir()
    run.last_ckpt.write_bytes(b"x")   # read (and refused when damaged) by train() once the claim allows it
    claim = run.check_can_train(compose_cfg(run.root, tiny()), RUN_SETTINGS)
    assert (claim.action, claim.checkpoint) == ("resume", run.last_ckpt)
    with pytest.raises(RunDirError, match="was trained with other settings: seed .*it used the defaults"):
        run.check_can_train(compose_cfg(run.root, tiny("seed=9")), RUN_SETTINGS)


def test_a_damaged_summary_is_named_and_refused_unless_the_user_chooses(tmp_path):
    run = _saved_run(tmp_path / "run", "completed")
    run.summary.write_text("{")
    before = files(run.root)
    with pytest.raises(RunDirError, match=r"summary.json is damaged .*overwrite=true .*resume="):
        run.check_can_train(compose_cfg(run.root, tiny()), RUN_SETTINGS)
    with pytest.raises(RunDirError, match="contradict"):
        run.check_can_train(compose_cfg(run.root, tiny("overwrite=true", f"resume={run.root}")), RUN_SETTINGS)
    assert run.check_can_train(compose_cfg(run.root, tiny("overwrite=true")), RUN_SETTINGS).action == "fresh"
    assert_unchanged(run.root, before)
    run.keep_damaged_summary()
    assert not run.summary.exists() and run.damaged_summary.read_text() == "{"


def test_start_over_clears_exactly_the_declared_outputs_and_only_in_a_run_directory(tmp_path):
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    for name in RUN_OUTPUTS:
        (run.root / name).write_text("old")
    (run.root / "mine").mkdir()
    (run.root / "notes.txt").write_text("the user's")
    assert run.start_over(RUN_OUTPUTS) == list(RUN_OUTPUTS)
    assert sorted(p.name for p in run.root.iterdir()) == ["mine", "notes.txt"]
    other = RunDir(tmp_path / "not_a_run")   # no summary.json, no saved config: not qbn's to clear
    other.root.mkdir()
    (other.root / RunDir.METRICS).write_text("someone else's")
    assert other.start_over(RUN_OUTPUTS) == [] and (other.root / RunDir.METRICS).exists()


def test_the_summary_marks_a_run_in_progress_and_records_how_it_ended(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_summary({"status": "failed", "error": "ValueError: old", "wall_s": 5.0})
    run.mark_running({"status": "running", "seed": 0}, fresh=True)   # a fresh start keeps nothing stale
    assert run.read_summary() == {"status": "running", "seed": 0}
    run.write_summary({"status": "failed", "error": "ValueError: old", "kept": 1})
    run.mark_running({"status": "running"}, fresh=False)   # training on: the run's record, its error cleared
    assert run.read_summary() == {"status": "running", "error": None, "kept": 1}
    run.record_failure("interrupted", KeyboardInterrupt(), {"wall_s": 1.0}, with_traceback=False)
    assert run.read_summary()["status"] == "interrupted" and not run.error.exists()
    run.record_failure("failed", ValueError("boom"), {"wall_s": 2.0}, with_traceback=True)
    assert run.read_summary()["error"] == "ValueError: boom" and "ValueError: boom" in run.error.read_text()


def test_a_refused_sweep_job_is_noted_for_the_sweep_and_a_single_run_is_not(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    job = RunDir(sweep / "3")
    job.note_refusal(OmegaConf.create({"mode": RunMode.RUN, "sweep": {"dir": str(sweep)}}), RunDirError("no"))
    assert RunDir.refusals(sweep) == []
    job.note_refusal(OmegaConf.create({"mode": RunMode.MULTIRUN, "sweep": {"dir": str(sweep)}}), RunDirError("no"))
    assert RunDir.refusals(sweep) == ["3: RunDirError: no"]
    RunDir.forget_refusals(sweep)
    assert RunDir.refusals(sweep) == []
    job.forget_if_made()   # Hydra never made it: nothing to remove, nothing made
    assert not job.root.exists()
