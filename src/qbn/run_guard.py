"""Which settings make a config the same run as the one a run directory holds: the part of
"results are sacred" that knows the options. qbn.rundir.RunDir decides what a command may do with
a run directory (skip, refuse, resume, start over) and asks RUN_SETTINGS here whether the settings
differ.

Why this sits above qbn.rundir: it names options (what changes no result, what a resume may
change) and compares configs key by key with qbn.config.flatten, and qbn.rundir sits below
qbn.config so that every module may ask it for a path.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .config import flatten
from .errors import RunDirError
from .rundir import task_config

# Settings that do not change what a run computes: they may differ when a run directory is met again.
NOT_RESULTS = ("resume", "overwrite", "name", "run", "sweep", "paths", "report", "test_after_fit", "logger",
               "callbacks.progress", "callbacks.model_summary", "dataset.num_workers", "dataset.data_dir",
               "trainer.enable_model_summary",
               "trainer.enable_progress_bar", "trainer.accelerator", "trainer.devices",
               "channels_last", "compile")  # how the step is computed, not what (qbn.speed)
# ... and what training on (resume=, or an interrupted job run again) may change besides: only upward
# (check_adds_epochs).
TRAIN_ON = ("trainer.max_epochs",)
# The options that say what to do with the run directory, not what the run is: left out of the
# overrides a resumed run saves.
COMMAND_ONLY = ("resume", "overwrite")


def _ignored(key: str, allowed: tuple[str, ...]) -> bool:
    return any(key == a or key.startswith(a + ".") for a in allowed)


def config_diff(saved: DictConfig, new: DictConfig,
                allowed: tuple[str, ...] = NOT_RESULTS) -> list[tuple[str, object, object]]:
    """(key, saved value, new value) for each setting that differs, unresolved (interpolations
    such as ${seed} compare as written), except keys under `allowed` and keys the saved config does
    not have (options a later qbn added: a run saved before them is still the same run)."""
    a, b = flatten(task_config(saved)), flatten(task_config(new))
    missing = "(unset)"
    return [(k, a[k], b.get(k, missing)) for k in sorted(a)
            if not _ignored(k, allowed) and a[k] != b.get(k, missing)]


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def own_overrides(overrides: list[str]) -> list[str]:
    """The overrides that are the run's settings (resume= and overwrite= left out)."""
    return [o for o in overrides if _key(o) not in COMMAND_ONLY]


def merged_overrides(old: list[str], new: list[str]) -> list[str]:
    """A resumed run's overrides: the run's own, updated by this command's (resume= left out)."""
    new = own_overrides(new)
    given = {_key(o) for o in new}
    return [o for o in old if _key(o) not in given] + new


def own_epochs(saved: DictConfig, previous: dict | None) -> int | None:
    """The epoch a run ends at by its own settings (its saved trainer.max_epochs, or the epochs a
    completed summary records, whichever is later); None when neither says."""
    found = [OmegaConf.select(saved, "trainer.max_epochs", default=None), (previous or {}).get("epochs")
             if (previous or {}).get("status") == "completed" else None]
    found = [int(v) for v in found if isinstance(v, int) and not isinstance(v, bool)]
    return max(found) if found else None


def check_adds_epochs(cfg: DictConfig, saved: DictConfig, previous: dict | None, run_dir: Path) -> None:
    """A resume only adds epochs: one that would end before the run's own last epoch (or, for a
    completed run, at it: nothing to add) would relabel a finished result; refused."""
    own, new = own_epochs(saved, previous), OmegaConf.select(cfg, "trainer.max_epochs", default=None)
    if own is None or not isinstance(new, int):
        return
    completed = (previous or {}).get("status") == "completed"
    need = f"above {own}" if completed else f"of at least {own}"
    if new < own:
        what = "completed" if completed else "is set to train"
        raise RunDirError(f"trainer.max_epochs={new}: {run_dir} {what} {own} "
                          f"epochs, and a resume only adds epochs (ending at {new} would relabel the run): give "
                          f"trainer.max_epochs {need}, or overwrite=true to retrain it with {new}")
    if completed and new == own:
        raise RunDirError(f"trainer.max_epochs={new}: {run_dir} already completed its {own} epochs, and a resume only "
                          f"adds epochs: give trainer.max_epochs {need}")


class RunSettings:
    """qbn.rundir.Settings: what RunDir.check_can_train asks of the options."""

    @staticmethod
    def differences(saved: DictConfig, new: DictConfig, training_on: bool) -> list[tuple[str, object, object]]:
        return config_diff(saved, new, NOT_RESULTS + TRAIN_ON if training_on else NOT_RESULTS)

    check_adds_epochs = staticmethod(check_adds_epochs)
    own_overrides = staticmethod(own_overrides)
    merged_overrides = staticmethod(merged_overrides)


RUN_SETTINGS = RunSettings()
