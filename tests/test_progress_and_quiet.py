"""Progress without a terminal (a line per epoch and every few seconds/minutes inside one), and
quiet by default: no Lightning advertisement, no warnings from qbn's own library use, no FLOPs
row that counts nothing, while a user's own warnings still show."""

from __future__ import annotations

import logging
import re
import warnings

import pytest
from pytorch_lightning.callbacks import RichProgressBar

from qbn.callbacks.progress import PlainProgress, progress_bar
from qbn.quiet import quiet_libraries
from qbn.testing.runs import compose_cfg, run_cli, tiny
from qbn.train import train

LINE = re.compile(r"epoch (\d+)/(\d+) step (\d+)/(\d+) .*loss [\d.]+.* acc [\d.]+.*; \d+ images/s, "
                  r"\d+:\d\d:\d\d elapsed(, \d+:\d\d:\d\d left)?")


# a line within an epoch: the epoch line's position, then the batch, running loss and accuracy, pace
BATCH_LINE = re.compile(r"epoch \d+/\d+ step \d+/\d+ batch (\d+)/\d+ loss [\d.]+ acc [\d.]+; \d+ images/s, "
                        r"\d+:\d\d:\d\d elapsed(, \d+:\d\d:\d\d left)?$")


def test_terminal_gets_the_rich_bar_and_a_pipe_plain_lines():
    assert isinstance(progress_bar(terminal=True), RichProgressBar)
    assert isinstance(progress_bar(terminal=False), PlainProgress)
    assert isinstance(progress_bar(), PlainProgress)  # pytest captures standard output: not a terminal


def test_plain_progress_logs_each_epoch_and_within_epochs(tmp_path, caplog):
    overrides = tiny("trainer.max_epochs=2",
                     "callbacks.progress={_target_:qbn.callbacks.progress.progress_bar,every_s:0}")
    with caplog.at_level(logging.INFO, logger="qbn.progress"):
        summary = train(compose_cfg(tmp_path / "run", overrides))
    lines = [r.getMessage() for r in caplog.records if r.name == "qbn.progress"]
    epoch_lines = [m for m in lines if "batch" not in m]
    assert [LINE.match(m).group(1, 2) for m in epoch_lines] == [("1", "2"), ("2", "2")], lines
    assert "val/acc" in epoch_lines[-1] and epoch_lines[-1].endswith(", 0:00:00 left")
    steps = summary["global_step"]
    assert LINE.match(epoch_lines[-1]).group(3, 4) == (str(steps), str(steps))
    inside = [m for m in lines if " batch " in m]  # every_s=0: a line after every batch
    assert len(inside) == steps and all(BATCH_LINE.match(m) for m in inside), inside
    per_epoch = steps // 2
    assert [int(BATCH_LINE.match(m).group(1)) for m in inside] == [*range(1, per_epoch + 1)] * 2
    assert re.search(r"batch 1/\d+ loss [\d.]+ acc [\d.]+; \d+ images/s", inside[0]), inside[0]


def test_quiet_filters_only_the_library_messages():
    quiet_libraries()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_libraries()  # the filters sit in front of "default"
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("my own warning", UserWarning, stacklevel=1)
        for key in ("weights/l2/layer1.0.conv1", "signs/flip_ratio", "train/loss"):   # DDP, per layer and statistic
            warnings.warn(f"It is recommended to use `self.log('{key}', ..., sync_dist=True)` when logging on epoch "
                          "level in distributed setting", UserWarning, stacklevel=1)
    assert [str(w.message)[:40] for w in caught] == ["my own warning", "It is recommended to use `self.log('trai"]
    record = logging.LogRecord("pytorch_lightning.utilities.rank_zero", logging.INFO, "", 0, "💡 Tip: try x",
                               None, None)
    assert not logging.getLogger("pytorch_lightning.utilities.rank_zero").filter(record)


@pytest.mark.slow  # a CLI run; the lines are checked in-process above, the library filters below
def test_piped_log_has_a_line_per_epoch_and_no_noise(tmp_path):
    """`python -m qbn.train ... > log 2>&1`: what a SLURM log or CI shows."""
    r = run_cli("qbn.train", "dataset=synthetic", "trainer.max_epochs=2", "report=false",
                "callbacks.kernel_stats.figures=false", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 0, r.stderr[-3000:]
    log = r.stdout + r.stderr
    assert len([m for m in log.splitlines() if LINE.search(m) and "batch" not in m]) == 2, log[-3000:]
    for noise in ("💡", "litlogger", "LeafSpec", "Total FLOPs", "FLOPs", "Trainer already configured"):
        assert noise not in log, noise
    assert "Total params" in log and "CifarResNet" in log  # the model summary keeps what means something
    assert "MulticlassAccuracy" not in log and "MaxMetric" not in log and "Mode" not in log
