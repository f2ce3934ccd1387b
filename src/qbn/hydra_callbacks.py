"""Hydra callbacks: the run directory checked before Hydra makes it, and a multirun aggregated when
it ends, exiting non-zero if a job failed or was refused (a refused job leaves its run directory
untouched, so it notes itself in the sweep folder: RunDir.note_refusal). What a run may do with its
directory is qbn.rundir.RunDir's; these hooks only ask it."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .aggregate import aggregate
from .errors import RunDirError
from .rundir import RunDir

log = logging.getLogger("qbn.sweep")

class CheckRunDir(Callback):
    """Before Hydra makes the run directory (where a failure would be its traceback): one line
    saying the directory cannot be written, exit 1."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(config.hydra.sweep.dir)


def _check(folder: str) -> None:
    try:
        RunDir(folder).check_writable()
    except RunDirError as e:
        print(f"qbn: {e}", file=sys.stderr)
        raise SystemExit(1) from None


class AggregateOnMultirunEnd(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        RunDir.forget_refusals(config.hydra.sweep.dir)  # an earlier sweep's notes

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        refused = RunDir.refusals(sweep_dir)
        for line in refused:
            log.error("job %s", line)
        try:
            table = aggregate(sweep_dir)
        except Exception as e:  # noqa: BLE001  aggregation must never lose the jobs' results
            log.error("aggregation of %s failed: %s", sweep_dir, e)
            if refused:
                raise SystemExit(1) from None
            return
        failed = [r for r in table if r.get("status") != "completed"]
        log.info("sweep %s: %d jobs, %d failed, %d refused; results in %s/results.md", sweep_dir, len(table),
                 len(failed), len(refused), sweep_dir)
        if failed or refused:
            raise SystemExit(1)
