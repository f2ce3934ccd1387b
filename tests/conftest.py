"""Fixtures shared by the tests (helpers live in qbn.testing)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.register_assert_rewrite("qbn.testing")  # check_qbn_run's failures say what differed

from qbn.testing.golden import train_golden  # noqa: E402
from qbn.testing.runs import compose_cfg  # noqa: E402
from qbn.train import train  # noqa: E402

# The in-process run the suite shares (trained once per session): digits, 2 epochs, every instrument
# on (the default callbacks with kernel figures, QBN's codebooks by qbn.bits, a rewinding trunk's
# points, the report), so the run-directory, nothing-lost, output-declaration and ONNX tests read one
# real run directory instead of training their own.
DIGITS_RUN = ["dataset=digits", "trainer.max_epochs=2", "trainer.limit_train_batches=6", "callbacks.progress=null",
              "trainer.enable_model_summary=false", "qbn.bits=4", "rewind=trunk"]

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def cfg_factory(tmp_path):
    """cfg_factory(*overrides, run_dir=None) -> composed config whose run dir is under tmp_path."""
    def make(*overrides: str, run_dir: Path | None = None):
        return compose_cfg(run_dir or tmp_path / "run", list(overrides))
    return make


@pytest.fixture(scope="session")
def shared_run_dir(tmp_path_factory) -> Path:
    """The golden run (qbn.testing.golden: a whole digits epoch, every default instrument, report
    and figures, by the CLI), trained once for the whole session. Read it only; `shared_run` gives
    a copy to change."""
    run_dir = tmp_path_factory.mktemp("shared") / "run"
    train_golden(run_dir)
    return run_dir


@pytest.fixture
def shared_run(shared_run_dir, tmp_path) -> Path:
    """A copy of the shared run for one test (its .hydra/config.yaml still names the original's paths)."""
    return Path(shutil.copytree(shared_run_dir, tmp_path / "shared_run"))


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A completed 2-epoch digits run with every instrument on (DIGITS_RUN: summary, signs, kernels,
    QBN codebooks, the trunk's checkpoints, report, figures), trained once per session in-process.
    Read it only; a test that changes it (or writes into it) takes a copy (digits_run_copy)."""
    run = tmp_path_factory.mktemp("digits") / "run"
    summary = train(compose_cfg(run, DIGITS_RUN))
    assert summary["status"] == "completed" and summary["qbn"]["bits"] == 4 and (run / "report.md").exists()
    return run


@pytest.fixture
def digits_run_copy(digits_run, tmp_path) -> Path:
    """A copy of digits_run in this test's tmp_path."""
    return Path(shutil.copytree(digits_run, tmp_path / "run", symlinks=True))
