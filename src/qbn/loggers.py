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

from .rundir import RunDir


class _AppendingWriter(ExperimentWriter):
    NAME_METRICS_FILE = RunDir.METRICS   # Lightning's own name, taken from the layout

    def __init__(self, log_dir: str, resume_epoch: int | None = None):
        self.resume_epoch = resume_epoch  # read by _check_log_dir_exists, which the base __init__ calls
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if not os.path.isfile(self.metrics_file_path):
            return
        if self.resume_epoch is None:
            # never silently lost
            old = os.path.join(os.path.dirname(self.metrics_file_path), RunDir.OLD_METRICS)
            os.replace(self.metrics_file_path, old)
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

    writes = (RunDir.METRICS,)
    may_write = (RunDir.OLD_METRICS,)   # a fresh start's earlier metrics.csv, kept

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


# ---- W&B: what the instruments and the report give a dashboard ------------------------------
# One place for the W&B calls; the numbers come from the code that computes them (callbacks,
# report), which passes them here. Without a WandbLogger among the loggers, nothing happens.

WANDB_WRITES = (RunDir.WANDB,)   # logger=wandb: W&B's own folder under the run directory (its save_dir)

def wandb_run(loggers):
    """The W&B run of the first WandbLogger among `loggers`, or None."""
    for logger in loggers or []:
        if type(logger).__name__ == "WandbLogger":
            return logger.experiment
    return None


def wandb_table(loggers, key: str, columns: list[str], rows: list[list],
                lines: dict[str, tuple[str, str]] | None = None,
                bars: dict[str, tuple[str, str]] | None = None) -> None:
    """Log a table as `key`, and W&B line / bar charts of its columns: {chart key: (x column, y column)}."""
    run = wandb_run(loggers)
    if run is None:
        return
    import wandb

    table = wandb.Table(columns=columns, data=rows)
    data = {key: table}
    for chart, (x, y) in (lines or {}).items():
        data[chart] = wandb.plot.line(table, x, y, title=chart)
    for chart, (x, y) in (bars or {}).items():
        data[chart] = wandb.plot.bar(table, x, y, title=chart)
    run.log(data)


def wandb_summary(loggers, flat_summary: dict) -> None:
    """summary.json's figures (numbers and short strings; nested keys already joined by '.') in the W&B run summary."""
    run = wandb_run(loggers)
    if run is None:
        return
    run.summary.update({k: v for k, v in flat_summary.items()
                        if isinstance(v, (bool, int, float)) or (isinstance(v, str) and len(v) <= 200)})
