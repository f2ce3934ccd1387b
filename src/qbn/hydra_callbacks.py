"""Hydra callbacks: aggregate a multirun when it ends, and exit non-zero if a job failed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .aggregate import aggregate

log = logging.getLogger("qbn.sweep")


class AggregateOnMultirunEnd(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            table = aggregate(sweep_dir)
        except Exception as e:  # noqa: BLE001  aggregation must never lose the jobs' results
            log.error("aggregation of %s failed: %s", sweep_dir, e)
            return
        failed = [r for r in table if r.get("status") != "completed"]
        log.info("sweep %s: %d jobs, %d failed; results in %s/results.md", sweep_dir, len(table), len(failed), sweep_dir)
        if failed:
            raise SystemExit(1)
