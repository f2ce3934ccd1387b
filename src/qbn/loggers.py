"""CSV logging that survives a resume.

Lightning's CSVLogger deletes an existing metrics.csv when its folder is not empty; a resumed
run must keep its history instead. This writer appends, and first drops the rows written after
the checkpoint it resumes from (a partial epoch, or the test of an earlier completion), so a
resumed run's metrics.csv reads like an uninterrupted run's.
"""

from __future__ import annotations

import csv
import os

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment


class _AppendingWriter(ExperimentWriter):
    def __init__(self, log_dir: str, resume_epoch: int | None = None):
        self.resume_epoch = resume_epoch  # read by _check_log_dir_exists, which the base __init__ calls
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if not os.path.isfile(self.metrics_file_path):
            return
        if self.resume_epoch is None:
            os.replace(self.metrics_file_path, self.metrics_file_path + ".old")  # never silently lost
            return
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            keys, rows = list(reader.fieldnames or []), list(reader)

        def keep(row: dict) -> bool:
            epoch = row.get("epoch") or ""
            is_test = any(k.startswith("test/") and row.get(k) not in ("", None) for k in keys)
            return not is_test and (epoch == "" or float(epoch) <= self.resume_epoch)

        with open(self.metrics_file_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(r for r in rows if keep(r))
        self.metrics_keys = keys


class RunCSVLogger(CSVLogger):
    """metrics.csv directly in the run directory; appends when resuming from `resume_epoch`."""

    def __init__(self, run_dir: str, resume_epoch: int | None = None):
        super().__init__(save_dir=run_dir, name="", version="")
        self._resume_epoch = resume_epoch

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(self.log_dir, self._resume_epoch)
        return self._experiment
