"""Results are sacred: a completed run directory changes only when it is trained again; reruns with
other settings, failed or impossible resumes and bad inputs are refused in one line, before
anything is written."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from omegaconf import OmegaConf

from qbn.checkpoint import load_checkpoint
from qbn.errors import CheckpointError, ConfigError
from qbn.run_guard import RunDirError, config_diff, merged_overrides
from qbn.rundir import update_summary
from qbn.schema import check_config
from qbn.testing.golden import GOLDEN_OVERRIDES, golden
from qbn.testing.rundirs import assert_unchanged, files, one_line
from qbn.testing.runs import compose_cfg, run_cli, tiny
from qbn.train import _stopped_advice, train


def one_line_refusal(r, *needles: str) -> str:
    """A CLI refusal: exit 1, no traceback, one `qbn:` line holding every needle."""
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stdout
    return one_line(r.stderr, *needles)


@pytest.fixture
def completed(shared_run):
    """A completed 1-epoch run made by the real CLI (Hydra app, .hydra/ and job log included): a copy
    of the shared run, trained with GOLDEN_OVERRIDES."""
    assert (shared_run / ".hydra" / "config.yaml").exists() and (shared_run / "train.log").exists()
    return shared_run


def test_rerun_same_settings_skips_and_changes_nothing(completed):
    before = files(completed)
    summary = json.loads((completed / "summary.json").read_text())
    assert train(compose_cfg(completed, list(GOLDEN_OVERRIDES))) == summary   # skipped: the run's own summary
    assert_unchanged(completed, before)


@pytest.mark.slow  # a CLI run; the test above checks the same skip in-process
def test_cli_rerun_same_settings_skips_and_changes_nothing(completed):
    before = files(completed)
    r = run_cli("qbn.train", *GOLDEN_OVERRIDES, f"hydra.run.dir={completed}")
    assert r.returncode == 0 and "already completed" in r.stdout + r.stderr
    assert_unchanged(completed, before)


@pytest.mark.slow  # a subprocess or a whole report (seconds); CI's slow step runs it
def test_cli_rerun_other_settings_refused_naming_keys(completed):
    before = files(completed)
    r = run_cli("qbn.train", *golden("scaling=none", "seed=3"), f"hydra.run.dir={completed}")
    one_line_refusal(r, "completed run with other settings", "scaling.name", "seed", "overwrite=true")
    assert_unchanged(completed, before)  # .hydra/config.yaml too: Hydra no longer rewrites it


def test_resume_with_another_model_leaves_run_as_it_was(completed):
    before = files(completed)
    with pytest.raises(RunDirError, match="other settings: model"):
        train(compose_cfg(completed, golden("model=resnet32", "trainer.max_epochs=2", f"resume={completed}")))
    assert_unchanged(completed, before)


def test_resume_of_missing_directory_leaves_nothing(tmp_path):
    missing = tmp_path / "no_such_run"
    cfg = compose_cfg(missing, tiny(f"resume={missing}"))
    missing.mkdir()  # as Hydra does before the run starts
    with pytest.raises(RunDirError, match="not a qbn run directory"):
        train(cfg)
    assert not missing.exists()


def test_unwritable_run_directory_is_one_line(tmp_path, capsys, cfg_factory):
    from qbn.hydra_callbacks import _check

    (tmp_path / "a_file").write_text("x")
    with pytest.raises(SystemExit) as info:
        _check(str(tmp_path / "a_file" / "run"))  # before Hydra makes the directory (its error is a traceback)
    err = capsys.readouterr().err
    assert info.value.code == 1 and err.count("\n") == 1 and "cannot write the run directory" in err
    callbacks = cfg_factory().hydra.callbacks
    assert any(c["_target_"] == "qbn.hydra_callbacks.CheckRunDir" for c in callbacks.values())


@pytest.mark.slow  # a CLI run stopped by a signal
def test_cli_sigterm_in_first_epoch_advises_only_what_works(tmp_path):
    run = tmp_path / "run"
    r = run_cli("qbn.train", *tiny("+callbacks.stop._target_=tests.stop_callbacks.SigtermAtFirstBatch"),
                f"hydra.run.dir={run}")
    assert r.returncode == 130, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "nothing to resume" in out and "resume=" not in out and "Traceback" not in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    before = files(run)
    with pytest.raises(RunDirError, match="no checkpoints/last.ckpt .*without resume="):  # what it did not advise
        train(compose_cfg(run, tiny(f"resume={run}")))
    assert_unchanged(run, before)


@pytest.mark.slow
def test_cli_sweep_reused_with_other_values_is_refused_and_exits_nonzero(tmp_path):
    sweep = tmp_path / "sweep"
    args = [*tiny("trainer.limit_train_batches=1", "callbacks.sign_snapshots=null", "callbacks.kernel_stats=null"),
            f"hydra.sweep.dir={sweep}"]
    assert run_cli("qbn.train", "-m", "seed=0,1", *args).returncode == 0
    before = {j: files(sweep / j) for j in ("0", "1")}
    again = run_cli("qbn.train", "-m", "seed=0,1", *args)  # the same sweep: both jobs skipped
    assert again.returncode == 0 and (again.stdout + again.stderr).count("already completed") == 2
    swapped = run_cli("qbn.train", "-m", "seed=1,0", *args)  # values in another order: each job refused
    assert swapped.returncode == 1 and "Traceback" not in swapped.stderr
    assert (swapped.stdout + swapped.stderr).count("completed run with other settings: seed") >= 2
    for j in ("0", "1"):
        assert_unchanged(sweep / j, before[j])


# ---- in-process: the same rules, and what each refusal leaves --------------------------------------


def test_overwrite_retrains_from_scratch_and_clears_the_old_outputs(tmp_path):
    run = tmp_path / "run"
    first = train(compose_cfg(run, tiny("trainer.max_epochs=2")))
    assert first["epochs"] == 2 and (run / "signs" / "epoch_002.pt").exists()
    update_summary(run, **{"export/file_bytes": 123})   # what python -m qbn.export adds
    (run / "model.qbn").write_bytes(b"old")
    (run / "notes.txt").write_text("the user's own file")
    again = train(compose_cfg(run, tiny("trainer.max_epochs=1", "overwrite=true")))
    assert again["epochs"] == 1 and again["max_epochs"] == 1 and again["global_step"] == first["global_step"] // 2
    assert not any(k.startswith("export/") for k in again) and not (run / "model.qbn").exists()
    assert sorted(p.name for p in (run / "signs").iterdir()) == ["epoch_000.pt", "epoch_001.pt", "last_flip_step.pt"]
    assert torch.load(run / "signs" / "last_flip_step.pt", weights_only=True)["total_steps"] == again["global_step"]
    with open(run / "metrics.csv") as f:
        assert [r["epoch"] for r in csv.DictReader(f) if r.get("val/acc")] == ["0"]
    assert not (run / "metrics.csv.old").exists() and (run / "notes.txt").exists()
    state = load_checkpoint(run)
    assert state["epoch"] == 0 and state["global_step"] == again["global_step"]


def test_resume_and_overwrite_together_are_refused(tmp_path):
    with pytest.raises(RunDirError, match="contradict"):
        train(compose_cfg(tmp_path / "run", tiny("overwrite=true", f"resume={tmp_path / 'run'}")))


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_resume_from_damaged_last_ckpt_leaves_completed_run_as_it_was(shared_run, damage):
    run = shared_run
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(b"" if damage == "empty" else last.read_bytes()[:1000])
    before = files(run)
    with pytest.raises(CheckpointError, match="empty" if damage == "empty" else "not a PyTorch checkpoint"):
        train(compose_cfg(run, golden("trainer.max_epochs=2", f"resume={run}")))
    assert_unchanged(run, before)
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_resume_trains_on_and_keeps_the_runs_own_overrides(tmp_path):
    run = tmp_path / "run"
    train(compose_cfg(run, tiny("optimizer.lr=0.01")))
    more = train(compose_cfg(run, tiny("optimizer.lr=0.01", "trainer.max_epochs=2", f"resume={run}")))
    assert more["epochs"] == 2 and more["max_epochs"] == 2
    overrides = (run / ".hydra" / "overrides.yaml").read_text()
    assert "optimizer.lr=0.01" in overrides and "trainer.max_epochs=2" in overrides and "resume=" not in overrides


def test_damaged_qbn_from_ckpt_is_one_clear_error(tmp_path):
    (tmp_path / "bwn.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        train(compose_cfg(tmp_path / "run", tiny("qbn.bits=4", f"qbn.from_ckpt={tmp_path / 'bwn.ckpt'}")))


def test_unreadable_checkpoint_files_each_one_clear_message(tmp_path):
    import pickle

    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(64)}}, good)
    cases = {"empty": (b"", "is empty"), "truncated": (good.read_bytes()[:200], "not a PyTorch checkpoint"),
             "text": (b"hello, not a checkpoint", "not a PyTorch checkpoint"),
             "pickle": (pickle.dumps({"state_dict": {}}), "not a PyTorch checkpoint")}
    for name, (data, message) in cases.items():
        (tmp_path / f"{name}.ckpt").write_bytes(data)
        with pytest.raises(CheckpointError, match=message) as info:
            load_checkpoint(tmp_path / f"{name}.ckpt")
        assert "\n" not in str(info.value) and "weights_only" not in str(info.value)
    import zipfile

    with zipfile.ZipFile(tmp_path / "zipped.ckpt", "w") as z:  # a zip archive holding a pickled object
        z.writestr("archive/data.pkl", pickle.dumps(object()))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "zipped.ckpt")
    assert "weights_only" not in str(info.value)


@pytest.mark.slow  # a subprocess or a whole report (seconds); CI's slow step runs it
def test_summary_cli_on_a_bad_file_is_one_line(tmp_path, capsys):
    import pickle

    from qbn.summary import main as summary_main

    (tmp_path / "model.qbn").write_bytes(b"")
    one_line_refusal(run_cli("qbn.summary", str(tmp_path / "model.qbn")), "model.qbn", "empty")
    for data in (pickle.dumps({"a": 1}), b"\x89QBX\r\n\x1a\n" + b"\0" * 64, b"\x89QBN\r\n\x1a\n" + b"\xff" * 64):
        (tmp_path / "model.qbn").write_bytes(data)
        assert summary_main([str(tmp_path / "model.qbn")]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("qbn: ") and "weights_only" not in err, err


def test_check_config_names_each_bad_option(cfg_factory):
    for override, key in (("optimizer.lr=abc", "optimizer.lr"), ("optimizer.lr=-0.1", "optimizer.lr"),
                          ("trainer.max_epochs=-1", "trainer.max_epochs"),
                          ("trainer.max_epochs=1.5", "trainer.max_epochs"),
                          ("dataset.batch_size=0", "dataset.batch_size"),
                          ("optimizer=sgd optimizer.momentum=2", "optimizer.momentum"),
                          ("qbn.bits=12", "qbn.bits"), ("seed=true", "seed")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            check_config(cfg_factory(*tiny(*override.split())))
    check_config(cfg_factory(*tiny("optimizer.lr=1e-3", "qbn.bits=4", "dataset.num_workers=null")))  # good values pass


def test_config_diff_names_what_differs_and_ignores_what_does_not_matter(cfg_factory):
    a = cfg_factory(*tiny())
    b = cfg_factory(*tiny("scaling=none", "dataset.num_workers=3", "callbacks.progress=null", "name=other"))
    assert [k for k, _, _ in config_diff(a, b)] == ["scaling.name"]
    older = OmegaConf.create(OmegaConf.to_container(a, resolve=False))
    del older["allow_tf32"]  # saved before qbn had this option: still the same run
    assert config_diff(older, a) == [] and [k for k, _, _ in config_diff(a, older)] == ["allow_tf32"]
    assert merged_overrides(["model=resnet32", "seed=1"], ["seed=2", "resume=x", "trainer.max_epochs=9"]) == [
        "model=resnet32", "seed=2", "trainer.max_epochs=9"]


def test_stopped_advice_says_resume_only_with_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    compose_cfg(run, tiny("seed=4"))
    advice = _stopped_advice(KeyboardInterrupt())
    assert "nothing to resume" in advice and "resume=" not in advice
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    advice = _stopped_advice(KeyboardInterrupt())
    assert f"resume={run}" in advice and "seed=4" in advice
