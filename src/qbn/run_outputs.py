"""What a run directory may hold, derived rather than listed by hand: the directory's own entries
(RunDir.CORE, RunDir.CORE_MAY) and what each writer declares: a callback's or logger's `writes`
(always, when it is on) and `may_write` (only in some cases), a module's WRITES. `overwrite=true`
clears exactly RUN_OUTPUTS (qbn.rundir.RunDir.start_over: nothing else in the directory is touched);
tests/test_run_outputs.py trains a run with every instrument on and checks its directory against
the declarations, both ways.

A new instrument that writes into the run directory gets its names from RunDir, declares them, and
is added to WRITERS (the test fails for a callback in conf/ that takes run_dir and is not here)."""

from __future__ import annotations

from types import ModuleType

from . import report
from .callbacks.codebook import QBNCallback
from .callbacks.kernel_stats import KernelStats
from .callbacks.run_checkpoint import RunCheckpoint
from .callbacks.sign_flips import SignFlipTracker
from .callbacks.sign_snapshots import SignSnapshots
from .export import files, onnx
from .loggers import WANDB_WRITES, RunCSVLogger
from .rewind.callbacks import ApplyRewind, FreezeSigns, RewindPoints
from .rundir import RunDir

# Everything that writes into a run directory besides the run itself (train.py: .hydra/, summary.json).
WRITERS: tuple[type | ModuleType, ...] = (
    RunCheckpoint, QBNCallback, SignFlipTracker, SignSnapshots, KernelStats,   # callbacks (conf/callbacks/)
    RewindPoints, ApplyRewind, FreezeSigns,                                    # rewinding's (conf/rewind/)
    RunCSVLogger, report, files, onnx,                                         # logger, report=true, qbn.export
)


def writes(writer: type | ModuleType) -> tuple[str, ...]:
    """The run-directory entries `writer` writes whenever it runs (a class's `writes`, a module's WRITES)."""
    return tuple(getattr(writer, "writes", None) or getattr(writer, "WRITES", ()))


def may_write(writer: type | ModuleType) -> tuple[str, ...]:
    """The entries `writer` writes only in some cases (an earlier run's file kept aside)."""
    return tuple(getattr(writer, "may_write", ()))


def _unique(names) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


# Every entry qbn may write in a run directory, the directory's own first (its order: the order
# overwrite=true reports what it cleared).
RUN_OUTPUTS = _unique([*RunDir.CORE, *RunDir.CORE_MAY, *WANDB_WRITES,
                       *(name for w in WRITERS for name in (*writes(w), *may_write(w)))])
