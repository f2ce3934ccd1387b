"""Nothing lost: a mistyped option, a shorter resume, a failing aggregation or a damaged file never
wipes, relabels or silently shrinks a result. Each case runs on a real (digits) run directory and
compares every file's bytes before and after; one trained run is shared (conftest.digits_run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from qbn.aggregate import main as aggregate_main
from qbn.analysis.sign_dynamics import main as signs_main
from qbn.build import build_datamodule
from qbn.errors import ConfigError, DamagedFileError, DatasetMissingError
from qbn.export.__main__ import main as export_main
from qbn.kernels.__main__ import main as kernels_main
from qbn.report import main as report_main
from qbn.rewind import RewindError
from qbn.rewind.__main__ import check_before_training
from qbn.run_guard import RunDirError
from qbn.rundir import read_summary, update_summary, wall_segments
from qbn.study.__main__ import report_main as study_report_main
from qbn.testing.rundirs import assert_unchanged, files, one_line, read_only, temporary_files
from qbn.testing.runs import compose_cfg, run_cli
from qbn.train import train

from .conftest import DIGITS_RUN


def _train(run: Path, *overrides: str) -> dict:
    return train(compose_cfg(run, [*DIGITS_RUN, *overrides]))


# ---- 1: every typed option checked before anything starts ----------------------------------------

@pytest.mark.parametrize("override, message", [
    ("overwrite=yes_please", "overwrite='yes_please': not a valid bool; it takes true or false"),
    ("overwrite=no", "overwrite='no': not a valid bool; it takes true or false"),   # would read as true
    ("report=1", "report=1: not a valid bool; it takes true or false"),
    ("test_after_fit=maybe", "test_after_fit='maybe': not a valid bool; it takes true or false"),
    ("channels_last=yes", "channels_last='yes' is not valid: choose one of true, false, auto"),
    ("allow_tf32=on", "allow_tf32='on': not a valid bool; it takes true or false"),
    ("seed=abc", "seed='abc'"),
])
def test_1_a_mistyped_option_is_one_line_and_the_run_keeps_every_file(digits_run_copy, override, message):
    before = files(digits_run_copy)
    with pytest.raises(ConfigError) as info:
        _train(digits_run_copy, override)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert_unchanged(digits_run_copy, before)


# ---- 2 and 6: a resume only adds epochs; wall_s over every segment --------------------------------

@pytest.mark.parametrize("epochs", [1, 2])
def test_2_a_resume_that_would_not_add_epochs_is_refused_and_changes_nothing(digits_run_copy, epochs):
    before = files(digits_run_copy)
    with pytest.raises(RunDirError, match=f"trainer.max_epochs={epochs}: .* 2 epochs.*only adds epochs.*above 2"):
        _train(digits_run_copy, f"trainer.max_epochs={epochs}", f"resume={digits_run_copy}")
    assert_unchanged(digits_run_copy, before)


def test_2_an_interrupted_run_may_not_be_resumed_to_end_before_its_own_last_epoch(digits_run_copy):
    """An interrupted run set to train 2 epochs: resuming it with max_epochs=1 would cut it short."""
    update_summary(digits_run_copy, status="interrupted")
    before = files(digits_run_copy)
    with pytest.raises(RunDirError, match="is set to train 2 epochs.*at least 2"):
        _train(digits_run_copy, "trainer.max_epochs=1", f"resume={digits_run_copy}")
    with pytest.raises(RunDirError, match="is set to train 2 epochs"):   # an interrupted sweep job run again
        _train(digits_run_copy, "trainer.max_epochs=1")
    assert_unchanged(digits_run_copy, before)


def test_6_wall_segments_against_a_direct_sum():
    assert wall_segments(None, 10.04) == {"wall_s": 10.0, "wall_s_segments": [10.0]}
    old = {"wall_s": 88.1}   # written before segments were kept: its wall_s is the first segment
    assert wall_segments(old, 8.1) == {"wall_s": 96.2, "wall_s_segments": [88.1, 8.1]}
    two = {"wall_s": 96.2, "wall_s_segments": [88.1, 8.1]}
    assert wall_segments(two, 3.0) == {"wall_s": round(88.1 + 8.1 + 3.0, 1), "wall_s_segments": [88.1, 8.1, 3.0]}


@pytest.mark.slow
def test_6_a_resume_adds_its_segment_to_wall_s(digits_run_copy):
    first = read_summary(digits_run_copy)
    more = _train(digits_run_copy, "trainer.max_epochs=3", f"resume={digits_run_copy}")
    assert more["epochs"] == 3 and more["max_epochs"] == 3
    segments = more["wall_s_segments"]
    assert len(segments) == 2 and segments[0] == first["wall_s"]
    assert more["wall_s"] == pytest.approx(sum(segments), abs=0.11) and more["wall_s"] > first["wall_s"]
    assert read_summary(digits_run_copy)["wall_s_segments"] == segments


# ---- 3: aggregate writes nothing when it fails ------------------------------------------------------

def test_3_aggregate_that_fails_writes_nothing(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "results.md").write_text("# an earlier aggregation\n")
    (sweep / "notes").mkdir()          # a folder, but no job directory (.hydra/)
    before = files(sweep)
    assert aggregate_main([str(sweep)]) == 1
    one_line(capsys.readouterr().err, "holds no job directories")
    assert_unchanged(sweep, before)
    assert aggregate_main([str(tmp_path / "missing")]) == 1
    one_line(capsys.readouterr().err, "missing is not a directory")
    assert not (tmp_path / "missing").exists()


def test_3_aggregate_lists_a_damaged_job_by_path_and_counts_the_others(digits_run, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        shutil.copytree(digits_run, sweep / job)
    (sweep / "1" / "summary.json").write_text("{")
    assert aggregate_main([str(sweep)]) == 0
    md = (sweep / "results.md").read_text()
    assert "2 jobs, 1 completed" in md and "damaged" in md and str(sweep / "1" / "summary.json") in md


# ---- 4: a damaged file is named in one line ---------------------------------------------------------

def test_4_training_into_a_damaged_summary_is_refused(digits_run_copy):
    (digits_run_copy / "summary.json").write_text("{")
    before = files(digits_run_copy)
    for overrides in ((), ("trainer.max_epochs=3",)):
        with pytest.raises(RunDirError) as info:
            _train(digits_run_copy, *overrides)
        message = str(info.value)
        assert "summary.json is damaged" in message and "overwrite=true" in message and "resume=" in message
        assert "\n" not in message
    assert_unchanged(digits_run_copy, before)


@pytest.mark.parametrize("name", ["summary.json", "signs.json", "kernels.json"])
def test_4_report_names_a_damaged_file_and_writes_nothing(digits_run_copy, name, capsys):
    (digits_run_copy / name).write_text("{")
    before = files(digits_run_copy)
    assert report_main([str(digits_run_copy)]) == 1
    one_line(capsys.readouterr().err, f"{digits_run_copy / name} is damaged")
    assert_unchanged(digits_run_copy, before)


def test_4_signs_names_a_damaged_summary(digits_run_copy, capsys):
    (digits_run_copy / "summary.json").write_text("[1, 2]")   # JSON, but not a summary
    before = files(digits_run_copy)
    assert signs_main([str(digits_run_copy)]) == 1
    one_line(capsys.readouterr().err, "summary.json is damaged")
    assert_unchanged(digits_run_copy, before)


def test_4_study_report_lists_damaged_runs_by_path_and_never_as_unfinished(digits_run, tmp_path, capsys):
    study = tmp_path / "study"
    for job in ("good", "bad", "bad_signs"):
        shutil.copytree(digits_run, study / "scaling" / job)
    (study / "scaling" / "bad" / "summary.json").write_text("{")
    (study / "scaling" / "bad_signs" / "signs.json").write_text("{")
    runs = {j: files(study / "scaling" / j) for j in ("good", "bad", "bad_signs")}
    assert study_report_main([str(study)]) == 0
    out = capsys.readouterr().out
    assert "2 runs with a damaged file" in out and str(study / "scaling" / "bad") in out
    md = (study / "RESULTS.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| scaling |"))
    # started 3, completed 2 (bad_signs' summary reads), failed or unfinished 0, damaged 2
    assert [c.strip() for c in row.split("|")[3:7]] == ["3", "2", "0", "2"], row
    assert "$STUDY/scaling/bad: $STUDY/scaling/bad/summary.json is damaged" in md
    assert "$STUDY/scaling/bad_signs: $STUDY/scaling/bad_signs/signs.json is damaged" in md
    for job, before in runs.items():
        assert_unchanged(study / "scaling" / job, before)


@pytest.mark.parametrize("name", ["study.json", ".study/config.yaml"])
def test_4_the_study_names_its_own_damaged_files(digits_run, tmp_path, name, capsys):
    study = tmp_path / "study"
    shutil.copytree(digits_run, study / "scaling" / "good")
    (study / name).parent.mkdir(parents=True, exist_ok=True)
    (study / name).write_text("{" if name.endswith(".json") else "a: [unclosed")
    before = files(study)
    assert study_report_main([str(study)]) == 1
    one_line(capsys.readouterr().err, f"{name} is damaged")
    assert_unchanged(study, before)


def test_4_read_summary_never_takes_a_damaged_file_for_a_missing_one(tmp_path):
    assert read_summary(tmp_path) is None
    for text in ("{", "", "[1]", "\xff"):
        (tmp_path / "summary.json").write_text(text, encoding="latin-1")
        with pytest.raises(DamagedFileError, match="summary.json is damaged"):
            read_summary(tmp_path)


@pytest.mark.slow
def test_4_resume_past_a_damaged_summary_keeps_it_aside(digits_run_copy):
    (digits_run_copy / "summary.json").write_text("{")
    summary = _train(digits_run_copy, "trainer.max_epochs=3", f"resume={digits_run_copy}")
    assert summary["status"] == "completed" and summary["epochs"] == 3
    assert (digits_run_copy / "summary.json.damaged").read_text() == "{"


# ---- every entry point: read-only run directory, a path under a file --------------------------------

ENTRY_POINTS = {  # name: (main, arguments given the run directory)
    "export": (export_main, lambda run: [str(run)]),
    "report": (report_main, lambda run: [str(run)]),
    "kernels": (kernels_main, lambda run: [str(run)]),
    "signs": (signs_main, lambda run: [str(run)]),
}


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_every_entry_point_on_a_read_only_run_directory_is_one_line(digits_run_copy, name, capsys):
    main, args = ENTRY_POINTS[name]
    before = files(digits_run_copy)
    try:
        with read_only(digits_run_copy):
            code = main(args(digits_run_copy))
    except OSError as e:
        pytest.skip(str(e))
    assert code == 1
    one_line(capsys.readouterr().err, "cannot write", str(digits_run_copy))
    assert_unchanged(digits_run_copy, before)


@pytest.mark.parametrize("name, args", [
    ("export", lambda run, f: [str(run), "--out", str(f / "model.qbn")]),
    ("export", lambda run, f: [str(run), "--out", str(f.parent)]),      # a directory where the file belongs
    ("kernels", lambda run, f: [str(run), "--out", str(f / "kernels")]),
])
def test_an_output_path_that_cannot_be_a_file_is_one_line(digits_run_copy, tmp_path, name, args, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    before = files(digits_run_copy)
    assert ENTRY_POINTS[name][0](args(digits_run_copy, a_file)) == 1
    one_line(capsys.readouterr().err, "cannot write")
    assert_unchanged(digits_run_copy, before)
    assert a_file.read_text() == "not a directory" and temporary_files(tmp_path) == []


def test_aggregate_and_study_report_on_a_read_only_directory_are_one_line(digits_run, tmp_path, capsys):
    sweep, study = tmp_path / "sweep", tmp_path / "study"
    shutil.copytree(digits_run, sweep / "0")
    shutil.copytree(digits_run, study / "scaling" / "0")
    before = files(tmp_path)
    try:
        with read_only(tmp_path):
            codes = aggregate_main([str(sweep)]), study_report_main([str(study)])
    except OSError as e:
        pytest.skip(str(e))
    assert codes == (1, 1)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("qbn: cannot write") for line in err), err
    assert_unchanged(tmp_path, before)


def test_the_saved_config_of_the_shared_run_is_the_digits_recipe(digits_run):
    """The shared run is what the tests above assume: a completed 2-epoch digits run."""
    cfg = OmegaConf.load(digits_run / ".hydra" / "config.yaml")
    assert cfg.dataset.name == "digits" and cfg.trainer.max_epochs == 2
    assert json.loads((digits_run / "summary.json").read_text())["epochs"] == 2


# ---- the command lines: one line before anything starts ------------------------------------------------

@pytest.mark.slow  # a CLI run; test_1_a_mistyped_option_... checks the same refusal in-process
def test_1_the_probe_command_line_is_one_line_and_changes_nothing(digits_run_copy):
    before = files(digits_run_copy)
    r = run_cli("qbn.train", *DIGITS_RUN, "overwrite=yes_please", f"hydra.run.dir={digits_run_copy}")
    assert r.returncode == 1
    one_line(r.stderr, "overwrite='yes_please'", "true or false")
    assert_unchanged(digits_run_copy, before)


@pytest.mark.slow  # a subprocess or a whole report (seconds); CI's slow step runs it
@pytest.mark.parametrize("command", [("qbn.train", "model=resnet99", "dataset=digits"), ("qbn.study", "scale=huge")])
def test_a_missing_model_or_scale_is_one_line_listing_the_choices(command, tmp_path):
    r = run_cli(*command, f"paths.output_dir={tmp_path}")
    assert r.returncode in (1, 2)
    line = one_line(r.stderr, "there is no", "choose one of")
    assert ("resnet20" in line) if "model" in line else ("smoke" in line)
    assert list(tmp_path.iterdir()) == []


def test_rewind_checks_every_sweep_value_before_the_trunk_trains():
    common = ["experiment=primary_subnet", "dataset=digits", "trainer.max_epochs=2"]
    check_before_training(common, ["rewind.signs=epoch:1,random", "seed=0,1"], "trunk")   # good values pass
    with pytest.raises(RewindError, match="rewind.signs='epoch:zz' is not understood"):
        check_before_training(common, ["rewind.signs=epoch:1,epoch:zz"], "trunk")
    with pytest.raises(ConfigError, match="overwrite='yes_please'"):
        check_before_training([*common, "overwrite=yes_please"], [], "trunk")


@pytest.mark.slow
def test_rewind_command_stops_at_a_bad_sweep_value_before_anything_trains(tmp_path):
    r = run_cli("qbn.rewind", "dataset=digits", "trainer.max_epochs=2", f"paths.output_dir={tmp_path}", "--",
                "rewind.signs=epoch:1,epoch:zz")
    assert r.returncode == 2
    one_line(r.stderr, "rewind.signs='epoch:zz'")
    assert list(tmp_path.iterdir()) == []   # no trunk directory: nothing trained


def test_an_image_folder_layout_error_is_its_own_line_not_hydras(tmp_path):
    (tmp_path / "imgs" / "train" / "a").mkdir(parents=True)
    with pytest.raises(DatasetMissingError, match="no image folder at") as info:
        build_datamodule(compose_cfg(tmp_path / "run", ["dataset=image_folder",
                                                        f"dataset.data_dir={tmp_path / 'imgs'}"]))
    assert "Error in call to target" not in str(info.value) and "\n" not in str(info.value)
