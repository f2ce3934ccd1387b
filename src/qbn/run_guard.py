"""Whether a command may write a run directory, decided before it writes anything there.

Results are sacred: a completed run directory changes only when it is trained again, with
`resume=DIR` (train on) or `overwrite=true` (retrain from scratch). Hydra would rewrite
.hydra/ before the run starts, so qbn switches that off (hydra.output_subdir: null) and saves
.hydra/ itself once this module has agreed (`take`):

- a completed directory, same settings: skipped, nothing written;
- a completed directory, other settings: refused, naming the keys that differ;
- resume=DIR: DIR must hold a readable last checkpoint (RunDir.last_ckpt) of a run with the same settings; a resume only
  adds epochs (trainer.max_epochs below the run's own, or equal to a completed run's, would end it
  early and relabel it: refused); otherwise refused and DIR left as it was;
- an unfinished directory with a last checkpoint (an interrupted sweep job): resumed, same rules;
- a damaged summary.json: refused, naming it (qbn cannot tell what the directory holds); the user
  chooses overwrite=true, or resume=DIR, which keeps the damaged file as summary.json.damaged;
- overwrite=true, or an unfinished directory without a checkpoint: the old run's outputs (the
  entries qbn.run_outputs derives from what each writer declares) are cleared and training starts
  from scratch.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from .config import flatten
from .errors import DamagedFileError, QbnError
from .rundir import RunDir, read_summary, run_config

# Settings that do not change what a run computes: they may differ when a run directory is met again.
NOT_RESULTS = ("resume", "overwrite", "name", "run", "sweep", "paths", "report", "test_after_fit", "logger",
               "callbacks.progress", "callbacks.model_summary", "dataset.num_workers", "dataset.data_dir",
               "trainer.enable_model_summary",
               "trainer.enable_progress_bar", "trainer.accelerator", "trainer.devices",
               "channels_last", "compile")  # how the step is computed, not what (qbn.speed)
# ... and what training on (resume=, or an interrupted job run again) may change besides.
TRAIN_ON = ("trainer.max_epochs",)


class RunDirError(QbnError):
    pass


@dataclass
class Claim:
    """What this command does with its run directory: "skip", "fresh" or "resume" (from `checkpoint`)."""

    action: str
    checkpoint: Path | None = None
    previous: dict | None = None
    damaged: bool = False   # summary.json does not read: resume= keeps it aside as summary.json.damaged


def _ignored(key: str, allowed: tuple[str, ...]) -> bool:
    return any(key == a or key.startswith(a + ".") for a in allowed)


def task_config(cfg: DictConfig) -> DictConfig:
    """The run's own settings: cfg less Hydra's node (tests compose with it)."""
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]) if "hydra" in cfg else cfg


def config_diff(saved: DictConfig, new: DictConfig,
                allowed: tuple[str, ...] = NOT_RESULTS) -> list[tuple[str, object, object]]:
    """(key, saved value, new value) for each setting that differs, unresolved (interpolations
    such as ${seed} compare as written), except keys under `allowed` and keys the saved config does
    not have (options a later qbn added: a run saved before them is still the same run)."""
    a, b = flatten(task_config(saved)), flatten(task_config(new))
    missing = "(unset)"
    return [(k, a[k], b.get(k, missing)) for k in sorted(a)
            if not _ignored(k, allowed) and a[k] != b.get(k, missing)]


def describe_diff(diff: list, limit: int = 4) -> str:
    parts = [f"{k} ({old!r} there, {new!r} now)" for k, old, new in diff[:limit]]
    more = f" and {len(diff) - limit} more" if len(diff) > limit else ""
    return ", ".join(parts) + more


def saved_overrides(run_dir: Path) -> list[str]:
    path = RunDir(run_dir).overrides_yaml
    return [str(o) for o in OmegaConf.load(path)] if path.exists() else []


def _repeat_hint(run_dir: Path) -> str:
    own = [o for o in saved_overrides(run_dir) if o.split("=", 1)[0].lstrip("+~") not in ("resume", "overwrite")]
    return f"its options were: {' '.join(own)}" if own else "it used the defaults"


def claim(cfg: DictConfig, run_dir: Path) -> Claim:
    """Decide what may happen to `run_dir`; raises RunDirError (nothing written) when the command
    must not touch it. Reads only."""
    run_dir = Path(run_dir)
    try:
        previous, damaged = read_summary(run_dir), None
    except DamagedFileError as e:
        previous, damaged = None, e
    completed = bool(previous and previous.get("status") == "completed")
    last = RunDir(run_dir).last_ckpt
    last_name = last.relative_to(run_dir)
    if cfg.get("overwrite"):
        if cfg.get("resume"):
            raise RunDirError("resume= and overwrite=true contradict each other: resume trains on, overwrite retrains "
                              "from scratch; give one")
        return Claim("fresh", previous=previous)
    if damaged is not None and not cfg.get("resume"):
        raise RunDirError(f"{damaged}, so qbn cannot tell what {run_dir} holds: give overwrite=true to retrain it from "
                          f"scratch, or resume={run_dir} to train on from its {last_name}")
    try:
        saved = run_config(run_dir)
    except DamagedFileError as e:
        raise RunDirError(f"{e}: give overwrite=true to retrain this run directory from scratch") from None
    if cfg.get("resume"):
        if not run_dir.is_dir() or saved is None:
            raise RunDirError(f"resume={cfg.resume}: not a qbn run directory (no .hydra/config.yaml there); "
                              "give the directory of the run to resume (outputs/<name>/<time>)")
        if not last.exists():
            raise RunDirError(f"resume={cfg.resume}: there is no {last_name} to resume from (the run "
                              "stopped before its first epoch ended); start it again without resume=")
    elif completed:
        diff = config_diff(saved, cfg) if saved is not None else []
        if diff:
            raise RunDirError(f"{run_dir} holds a completed run with other settings: {describe_diff(diff)}. "
                              "Choose another hydra.run.dir, or overwrite=true to retrain it")
        return Claim("skip", previous=previous)
    elif not last.exists():
        return Claim("fresh", previous=previous)
    if saved is not None:  # training on: the same run, perhaps with more epochs
        diff = config_diff(saved, cfg, NOT_RESULTS + TRAIN_ON)
        if diff:
            raise RunDirError(f"{run_dir} was trained with other settings: {describe_diff(diff)}. Resume with the "
                              f"run's own settings ({_repeat_hint(run_dir)}), or overwrite=true to retrain it")
        check_adds_epochs(cfg, saved, previous, run_dir)
    return Claim("resume", checkpoint=last, previous=previous, damaged=damaged is not None)


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


def looks_like_run_dir(run_dir: Path) -> bool:
    return RunDir(run_dir).summary.exists() or RunDir(run_dir).config_yaml.exists()


def clear_outputs(run_dir: Path, outputs: tuple[str, ...]) -> list[str]:
    """Remove what an earlier run wrote in `run_dir` (the entries `outputs` names: qbn.run_outputs'
    RUN_OUTPUTS, and only in a qbn run directory; nothing else there is touched); returns the names
    removed. Hydra's job log (<job>.log) is emptied, not removed: this run's log is already open there."""
    run_dir = Path(run_dir)
    if not looks_like_run_dir(run_dir):
        return []
    removed = []
    for name in outputs:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(name)
    for handler in run_dir_log_handlers(run_dir):
        handler.flush()
        with open(handler.baseFilename, "w"):
            pass
    return removed


def check_writable(run_dir: Path) -> None:
    """One clear message when the run directory cannot be written (before training starts)."""
    probe = Path(run_dir) / ".qbn-write-test"
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise RunDirError(f"cannot write the run directory {run_dir} ({e.strerror or type(e).__name__}): choose a "
                          "writable place with hydra.run.dir=... or paths.output_dir=...") from None


def save_hydra_files(run_dir: Path, cfg: DictConfig, hydra_cfg: DictConfig | None, overrides: list[str]) -> None:
    """.hydra/config.yaml, hydra.yaml and overrides.yaml as Hydra writes them (unresolved)."""
    run = RunDir(run_dir)
    run.hydra_dir.mkdir(parents=True, exist_ok=True)
    files = {run.config_yaml: task_config(cfg), run.overrides_yaml: OmegaConf.create(list(overrides))}
    if hydra_cfg is not None:
        files[run.hydra_yaml] = OmegaConf.create({"hydra": hydra_cfg})
    for path, content in files.items():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(OmegaConf.to_yaml(content), encoding="utf-8")
        os.replace(tmp, path)


def merged_overrides(old: list[str], new: list[str]) -> list[str]:
    """A resumed run's overrides: the run's own, updated by this command's (resume= left out)."""
    key = lambda o: o.split("=", 1)[0].lstrip("+~")  # noqa: E731
    new = [o for o in new if key(o) not in ("resume", "overwrite")]
    given = {key(o) for o in new}
    return [o for o in old if key(o) not in given] + new


def run_dir_log_handlers(run_dir: Path) -> list[logging.FileHandler]:
    """The logging file handlers writing into run_dir (Hydra's job log)."""
    root = Path(run_dir).resolve()
    return [h for h in logging.getLogger().handlers
            if isinstance(h, logging.FileHandler) and root in Path(h.baseFilename).resolve().parents]


def leave_untouched(run_dir: Path) -> None:
    """Detach Hydra's job log from a run directory this command will not train (its file handler
    opens lazily, so nothing was written there yet)."""
    for handler in run_dir_log_handlers(run_dir):
        logging.getLogger().removeHandler(handler)
        handler.close()


REFUSED = "refused.txt"  # in the sweep folder: one line per job of this sweep that was refused


def note_refusal(hydra_cfg: DictConfig, run_dir: Path, error: BaseException) -> None:
    """A multirun job that stopped before touching its run directory: say so where the sweep looks."""
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return
    with open(Path(hydra_cfg.sweep.dir) / REFUSED, "a") as f:
        f.write(f"{Path(run_dir).name}: {type(error).__name__}: {error}\n")
