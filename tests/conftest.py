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

# The one real run directory the run-directory safety tests share (trained once per session).
DIGITS_RUN = ["dataset=digits", "trainer.max_epochs=2", "trainer.limit_train_batches=6", "callbacks.progress=null",
              "trainer.enable_model_summary=false"]

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
    """A completed 2-epoch digits run (summary, signs, kernels, report, figures, checkpoints), trained
    once per session in-process; a test that changes it takes a copy (digits_run_copy)."""
    run = tmp_path_factory.mktemp("digits") / "run"
    summary = train(compose_cfg(run, DIGITS_RUN))
    assert summary["status"] == "completed" and (run / "report.md").exists()
    return run


@pytest.fixture
def digits_run_copy(digits_run, tmp_path) -> Path:
    """A copy of digits_run in this test's tmp_path."""
    return Path(shutil.copytree(digits_run, tmp_path / "run", symlinks=True))
