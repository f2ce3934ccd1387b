"""Fixtures shared by the tests (helpers live in qbn.testing)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.register_assert_rewrite("qbn.testing")  # check_qbn_run's failures say what differed

from qbn.testing.runs import compose_cfg  # noqa: E402

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def cfg_factory(tmp_path):
    """cfg_factory(*overrides, run_dir=None) -> composed config whose run dir is under tmp_path."""
    def make(*overrides: str, run_dir: Path | None = None):
        return compose_cfg(run_dir or tmp_path / "run", list(overrides))
    return make
