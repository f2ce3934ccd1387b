"""The small command lines share one shape (qbn.errors.command): a usage line and exit 2 for wrong
arguments, one `qbn:` line and exit 1 for a mistake the user can fix, else their line and 0."""

from __future__ import annotations

import pytest

from qbn.data import fetch
from qbn.errors import QbnError, command
from qbn.report import main as report_main
from qbn.study import pack
from qbn.study.__main__ import report_main as study_report_main


def test_command_usage_error_and_success(capsys):
    def act(args):
        if args == ["bad"]:
            raise QbnError("bad thing; do this instead")
        return f"did {args[0]}"

    assert command([], "prog ARG", bool, act) == 2
    assert capsys.readouterr().err == "usage: prog ARG\n"
    assert command(["bad"], "prog ARG", bool, act) == 1
    assert capsys.readouterr().err == "qbn: bad thing; do this instead\n"
    assert command(["x"], "prog ARG", bool, act) == 0
    assert capsys.readouterr().out == "did x\n"


def test_command_turns_a_refused_file_into_one_line(capsys):
    def act(args):
        raise PermissionError(13, "Permission denied", "/data/train.gz")

    assert command(["x"], "prog ARG", bool, act) == 1
    assert capsys.readouterr().err == "qbn: /data/train.gz: permission denied\n"
    assert command(["--help"], "prog ARG", bool, act) == 0
    assert capsys.readouterr().out == "usage: prog ARG\n"


def test_command_lets_other_errors_through():
    def act(args):
        raise KeyError("a bug, not a user's mistake")

    with pytest.raises(KeyError):
        command(["x"], "prog ARG", bool, act)


@pytest.mark.parametrize("main, argv, usage", [
    (report_main, [], "python -m qbn.report RUN_DIR"),
    (study_report_main, ["a", "b"], "python -m qbn.study report STUDY_DIR"),
    (pack.main, [], "python -m qbn.study.pack RUN_DIR"),
    (fetch.main, ["cifar10"], "python -m qbn.data.fetch fashion_mnist"),
])
def test_each_command_says_its_usage(main, argv, usage, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"usage: {usage}")


@pytest.mark.parametrize("main", [report_main, study_report_main, pack.main])
def test_each_command_turns_a_missing_directory_into_one_line(main, tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("qbn: ") and err.count("\n") == 1, err
