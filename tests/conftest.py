"""Fixtures shared by the tests (helpers live in qbn.testing)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.register_assert_rewrite("qbn.testing")  # check_qbn_run's failures say what differed

from qbn.testing.golden import train_golden  # noqa: E402
from qbn.testing.runs import compose_cfg  # noqa: E402

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
