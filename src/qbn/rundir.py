"""The run directory (docs/architecture.md): RunDir owns it, and "results are sacred" reads here.

RunDir builds every path of a run directory (no other module spells a name), reads and writes
summary.json and the saved config in .hydra/, decides what a command may do with the directory
and takes it (the claim), and protects what is there. The rules, decided before anything is written:

- a completed directory, same settings: skipped, nothing written (not even Hydra's job log);
- a completed directory, other settings: refused, naming the keys that differ;
- resume=DIR: DIR must hold a readable last checkpoint of a run with the same settings; a resume
  only adds epochs (trainer.max_epochs below the run's own, or equal to a completed run's, would end
  it early and relabel it: refused); otherwise refused and DIR left as it was;
- an unfinished directory with a last checkpoint (an interrupted sweep job): resumed, same rules;
- a damaged summary.json: refused, naming it (qbn cannot tell what the directory holds); the user
  chooses overwrite=true, or resume=DIR, which keeps the damaged file as summary.json.damaged;
- overwrite=true, or an unfinished directory without a checkpoint: the old run's outputs (exactly
  the entries qbn.run_outputs derives from what each writer declares) are cleared and training
  starts from scratch.

A refusal changes nothing; a run that has taken its directory marks it in progress (summary.json,
status running) and records how it ended (completed, failed with the error, interrupted). Hydra
would rewrite .hydra/ before the run starts, so the config switches that off
(hydra.output_subdir: null) and `take` saves .hydra/ once the checks have passed.

Which settings make a config the same run is the one part that lives above this module
(qbn.run_guard, the `Settings` a claim is decided by): it names options and compares configs with
qbn.config, and this module sits below both so that every module may ask it for a path."""

from __future__ import annotations

import logging
import os
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from .errors import DamagedFileError, RunDirError
from .file_io import read_json, read_yaml, write_json

log = logging.getLogger("qbn.train")   # what a training command says about the directory it takes


def _entry(*parts: str) -> property:
    """A RunDir property: the path of the entry `parts` (names relative to the run directory)."""
    return property(lambda run: run.root.joinpath(*parts))


class Settings(Protocol):
    """How a command's config compares with the config a run directory saved (qbn.run_guard's
    RUN_SETTINGS). It lives above this module: it names the options and flattens configs with
    qbn.config, which sits above qbn.rundir."""

    def differences(self, saved: DictConfig, new: DictConfig, training_on: bool) -> list[tuple[str, Any, Any]]:
        """(key, saved value, new value) for each setting that makes `new` another run; training on
        (a resume) may change a few more (trainer.max_epochs)."""

    def check_adds_epochs(self, cfg: DictConfig, saved: DictConfig, previous: dict | None, run_dir: Path) -> None:
        """RunDirError when training on with `cfg` would end the run before its own last epoch."""

    def own_overrides(self, overrides: list[str]) -> list[str]:
        """The overrides that are the run's settings (those that say what to do with the directory left out)."""

    def merged_overrides(self, old: list[str], new: list[str]) -> list[str]:
        """A resumed run's overrides: the run's own, updated by this command's."""


@dataclass
class Claim:
    """What a command may do with its run directory (RunDir.check_can_train): "skip", "fresh" or
    "resume" (from `checkpoint`). `settings` decided it; RunDir.take saves the overrides by them."""

    action: str
    settings: Settings
    checkpoint: Path | None = None
    previous: dict | None = None   # the summary found there
    damaged: bool = False   # summary.json does not read: resume= keeps it aside as summary.json.damaged

    @property
    def protects(self) -> bool:
        """The directory holds results to keep until every check has passed (a resume, or a completed
        run retrained with overwrite=true): taken only just before training; any other is taken at once,
        so that a failure is recorded there."""
        return self.action == "resume" or (self.previous or {}).get("status") == "completed"


class RunDir:
    """One run directory, the one owner of what it holds. Layout: every path is built here (other
    modules ask, `RunDir(d).last_ckpt`, and never spell a name, so a file moves by one edit here);
    the names (relative to the directory) are class attributes, with which an instrument declares
    the entries it writes (`writes = (RunDir.SIGNS, RunDir.SIGNS_JSON)`; qbn.run_outputs derives
    from those declarations and CORE what `overwrite=true` clears). Behaviour: summary.json, the
    saved config in .hydra/, the claim (check_can_train, then take) and the protection (nothing is
    overwritten without overwrite=true, which clears exactly the declared outputs; a damaged file
    is named, never read as absent)."""

    HYDRA = ".hydra"                     # the composed config, Hydra's config and the command's overrides
    CHECKPOINTS = "checkpoints"
    SUMMARY = "summary.json"             # status, settings, final metrics and each instrument's totals
    DAMAGED_SUMMARY = "summary.json.damaged"  # a summary that did not read, kept aside by resume=
    ERROR = "error.txt"                  # a failed run's traceback
    METRICS = "metrics.csv"
    OLD_METRICS = "metrics.csv.old"      # an earlier run's metrics.csv a fresh start would overwrite
    SIGNS = "signs"                      # sign snapshots and last-flip steps
    SIGNS_JSON = "signs.json"
    KERNELS_JSON = "kernels.json"
    FIGURES = "figures"
    REPORT = "report.md"
    WANDB = "wandb"
    PACKED = "model.qbn"                 # python -m qbn.export's default output
    ONNX = "model.onnx"
    LAST_CKPT = "last.ckpt"              # in CHECKPOINTS: the state after the last epoch (resume= reads it)
    LAST_FLIP = "last_flip_step.pt"      # in SIGNS

    # What every run directory holds, whatever instruments run (the directory's own files), and what
    # it may hold after a failure or a resume past a damaged summary.
    CORE = (HYDRA, CHECKPOINTS, SUMMARY)
    CORE_MAY = (DAMAGED_SUMMARY, ERROR)

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    # ---- paths: the directory's own entries, the checkpoints, what the instruments write
    hydra_dir = _entry(HYDRA)
    config_yaml = _entry(HYDRA, "config.yaml")   # the composed config (qbn saves it once the run may write here)
    overrides_yaml = _entry(HYDRA, "overrides.yaml")
    hydra_yaml = _entry(HYDRA, "hydra.yaml")
    summary = _entry(SUMMARY)
    damaged_summary = _entry(DAMAGED_SUMMARY)
    error = _entry(ERROR)
    metrics = _entry(METRICS)
    checkpoints = _entry(CHECKPOINTS)
    last_ckpt = _entry(CHECKPOINTS, LAST_CKPT)
    init_ckpt = _entry(CHECKPOINTS, "init.ckpt")   # a rewinding trunk's epoch-0 state (qbn.rewind)
    signs = _entry(SIGNS)
    last_flip = _entry(SIGNS, LAST_FLIP)
    signs_json = _entry(SIGNS_JSON)
    kernels_json = _entry(KERNELS_JSON)
    figures = _entry(FIGURES)
    report = _entry(REPORT)
    packed = _entry(PACKED)
    onnx = _entry(ONNX)

    def epoch_ckpt(self, epoch: int) -> Path:
        """A rewinding trunk's full training state at the end of `epoch`."""
        return self.checkpoints / f"epoch_{epoch:03d}.ckpt"

    def share_ckpt(self, label: str) -> Path:
        """A rewinding trunk's full training state after a share of training (label: qbn.signs.share_label)."""
        return self.checkpoints / f"share_{label}.ckpt"

    def sign_snapshot(self, epoch: int) -> Path:
        """The signs at the end of `epoch` (000: initialisation)."""
        return self.signs / f"epoch_{epoch:03d}.pt"

    def share_snapshot(self, label: str) -> Path:
        """The signs after a share of training (label: qbn.signs.share_label)."""
        return self.signs / f"share_{label}.pt"

    # ---- summary.json: the run's record, status running (the in-progress marker) until it ends
    def read_summary(self) -> dict | None:
        """summary.json, None when there is none; DamagedFileError when it does not read as a JSON
        object (a damaged summary is never taken for a missing one)."""
        summary = read_json(self.summary)
        if summary is not None and not isinstance(summary, dict):
            raise DamagedFileError(f"{self.summary} is damaged (a JSON {type(summary).__name__}, not an object)")
        return summary

    def read_summary_or_none(self) -> dict | None:
        """read_summary, a damaged file read as absent (for listings that name damaged runs elsewhere)."""
        try:
            return self.read_summary()
        except DamagedFileError:
            return None

    def write_summary(self, summary: dict) -> None:
        """summary.json replaced whole (atomically)."""
        write_json(self.summary, summary)

    def update_summary(self, /, **fields: Any) -> dict:
        """Merge fields into summary.json (instruments add their totals this way); returns the summary."""
        summary = self.read_summary() or {}
        summary.update(fields)
        self.write_summary(summary)
        return summary

    def mark_running(self, summary: dict, fresh: bool) -> None:
        """The in-progress marker: `summary` (status running) written whole on a fresh start, so nothing
        stale (an earlier attempt's error) survives; merged into the run's record when it trains on."""
        if fresh:
            self.write_summary(summary)
        else:
            self.update_summary(error=None, **summary)

    def record_failure(self, status: str, error: BaseException, wall: dict, with_traceback: bool) -> None:
        """How a taken run ended when it did not complete (status failed or interrupted, the error in one
        line, its wall_s); error.txt holds the traceback of an error that is no user's mistake."""
        self.update_summary(status=status, error=f"{type(error).__name__}: {error}", **wall)
        if with_traceback:
            self.error.write_text("".join(traceback.format_exception(error)))

    # ---- .hydra/: the composed config, Hydra's config and the overrides, saved when the run takes the directory
    def saved_config(self) -> DictConfig | None:
        """The run's saved composed config, None when absent; DamagedFileError when it does not load."""
        return read_yaml(self.config_yaml)

    def saved_overrides(self) -> list[str]:
        path = self.overrides_yaml
        return [str(o) for o in OmegaConf.load(path)] if path.exists() else []

    def save_config(self, cfg: DictConfig, hydra_cfg: DictConfig | None, overrides: list[str]) -> None:
        """.hydra/config.yaml, hydra.yaml and overrides.yaml as Hydra writes them (unresolved)."""
        self.hydra_dir.mkdir(parents=True, exist_ok=True)
        files = {self.config_yaml: task_config(cfg), self.overrides_yaml: OmegaConf.create(list(overrides))}
        if hydra_cfg is not None:
            files[self.hydra_yaml] = OmegaConf.create({"hydra": hydra_cfg})
        for path, content in files.items():
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(OmegaConf.to_yaml(content), encoding="utf-8")
            os.replace(tmp, path)

    # ---- the claim: what this command may do here (reads only), then taking the directory
    def check_can_train(self, cfg: DictConfig, settings: Settings) -> Claim:
        """Decide what may happen to this directory (the rules in this module's docstring); raises
        RunDirError, with nothing written, when the command must not touch it. Reads only."""
        run_dir = self.root
        try:
            previous, damaged = self.read_summary(), None
        except DamagedFileError as e:
            previous, damaged = None, e
        completed = bool(previous and previous.get("status") == "completed")
        last = self.last_ckpt
        last_name = last.relative_to(run_dir)
        if cfg.get("overwrite"):
            if cfg.get("resume"):
                raise RunDirError("resume= and overwrite=true contradict each other: resume trains on, overwrite "
                                  "retrains from scratch; give one")
            return Claim("fresh", settings, previous=previous)
        if damaged is not None and not cfg.get("resume"):
            raise RunDirError(f"{damaged}, so qbn cannot tell what {run_dir} holds: give overwrite=true to retrain it "
                              f"from scratch, or resume={run_dir} to train on from its {last_name}")
        try:
            saved = self.saved_config()
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
            diff = settings.differences(saved, cfg, training_on=False) if saved is not None else []
            if diff:
                raise RunDirError(f"{run_dir} holds a completed run with other settings: {_describe(diff)}. "
                                  "Choose another hydra.run.dir, or overwrite=true to retrain it")
            return Claim("skip", settings, previous=previous)
        elif not last.exists():
            return Claim("fresh", settings, previous=previous)
        if saved is not None:  # training on: the same run, perhaps with more epochs
            diff = settings.differences(saved, cfg, training_on=True)
            if diff:
                raise RunDirError(f"{run_dir} was trained with other settings: {_describe(diff)}. Resume with the "
                                  f"run's own settings ({self._repeat_hint(settings)}), or overwrite=true to "
                                  "retrain it")
            settings.check_adds_epochs(cfg, saved, previous, run_dir)
        return Claim("resume", settings, checkpoint=last, previous=previous, damaged=damaged is not None)

    def _repeat_hint(self, settings: Settings) -> str:
        own = settings.own_overrides(self.saved_overrides())
        return f"its options were: {' '.join(own)}" if own else "it used the defaults"

    def take(self, claim: Claim, cfg: DictConfig, hydra_cfg: DictConfig, outputs: tuple[str, ...]) -> bool:
        """Make the directory this run's, once `claim` allows it: a fresh start clears an earlier run's
        `outputs` (qbn.run_outputs.RUN_OUTPUTS) and saves this command's overrides; a resume saves the
        run's own updated by this command's, and past a damaged summary.json keeps that file as
        summary.json.damaged. .hydra/ is saved last. Returns True: the directory is this run's."""
        self.check_writable()
        overrides = list(hydra_cfg.overrides.task)
        if claim.damaged:
            self.keep_damaged_summary()
        if claim.checkpoint is None:
            cleared = self.start_over(outputs)
            if cleared:
                log.info("%s: cleared the earlier run's %s; training from scratch", self.root, ", ".join(cleared))
        else:
            overrides = claim.settings.merged_overrides(self.saved_overrides(), overrides)
        self.save_config(cfg, hydra_cfg, overrides)
        return True

    # ---- the protection: what a command may change here, and what a refused one leaves
    def is_run_dir(self) -> bool:
        return self.summary.exists() or self.config_yaml.exists()

    def check_writable(self) -> None:
        """RunDirError, one clear line, when the directory cannot be written (before training starts;
        the Hydra callback CheckRunDir asks before Hydra makes it)."""
        probe = self.root / ".qbn-write-test"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise RunDirError(f"cannot write the run directory {self.root} ({e.strerror or type(e).__name__}): "
                              "choose a writable place with hydra.run.dir=... or paths.output_dir=...") from None

    def start_over(self, outputs: tuple[str, ...]) -> list[str]:
        """Remove what an earlier run wrote here: the entries `outputs` names (qbn.run_outputs'
        RUN_OUTPUTS), and only in a qbn run directory; nothing else there is touched. Returns the names
        removed. Hydra's job log (<job>.log) is emptied, not removed: this run's log is already open there."""
        if not self.is_run_dir():
            return []
        removed = []
        for name in outputs:
            path = self.root / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            removed.append(name)
        for handler in self._log_handlers():
            handler.flush()
            with open(handler.baseFilename, "w"):
                pass
        return removed

    def keep_damaged_summary(self) -> None:
        """A resume past a summary.json that does not read: the file kept aside, the run writes a new one."""
        os.replace(self.summary, self.damaged_summary)
        log.warning("%s/%s did not read: kept as %s; the resumed run writes a new one", self.root, self.SUMMARY,
                    self.DAMAGED_SUMMARY)

    def _log_handlers(self) -> list[logging.FileHandler]:
        """The logging file handlers writing into this directory (Hydra's job log)."""
        root = self.root.resolve()
        return [h for h in logging.getLogger().handlers
                if isinstance(h, logging.FileHandler) and root in Path(h.baseFilename).resolve().parents]

    def leave_untouched(self) -> None:
        """Detach Hydra's job log from a directory this command will not train (its file handler opens
        lazily: conf/hydra/default.yaml, so nothing was written there yet)."""
        for handler in self._log_handlers():
            logging.getLogger().removeHandler(handler)
            handler.close()

    def forget_if_made(self) -> None:
        """A refused run leaves nothing: not even the empty directory Hydra made for it (a missing
        resume= directory stays missing)."""
        if self.root.is_dir() and not any(self.root.iterdir()):
            self.leave_untouched()
            self.root.rmdir()

    def note_refusal(self, hydra_cfg: DictConfig, error: BaseException) -> None:
        """A multirun job that stopped before touching its directory: said where the sweep looks
        (REFUSED in the sweep folder), so the sweep still exits non-zero."""
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return
        with open(Path(hydra_cfg.sweep.dir) / REFUSED, "a") as f:
            f.write(f"{self.root.name}: {type(error).__name__}: {error}\n")

    @staticmethod
    def refusals(sweep_dir: str | Path) -> list[str]:
        """The lines note_refusal wrote in a sweep folder (one per refused job)."""
        path = Path(sweep_dir) / REFUSED
        return path.read_text().splitlines() if path.exists() else []

    @staticmethod
    def forget_refusals(sweep_dir: str | Path) -> None:
        """An earlier sweep's notes, removed as a sweep starts in the same folder."""
        (Path(sweep_dir) / REFUSED).unlink(missing_ok=True)


REFUSED = "refused.txt"  # in a sweep folder: one line per job of this sweep that was refused


def _describe(diff: list, limit: int = 4) -> str:
    parts = [f"{k} ({old!r} there, {new!r} now)" for k, old, new in diff[:limit]]
    more = f" and {len(diff) - limit} more" if len(diff) > limit else ""
    return ", ".join(parts) + more


def task_config(cfg: DictConfig) -> DictConfig:
    """The run's own settings: cfg less Hydra's node (tests compose with it)."""
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]) if "hydra" in cfg else cfg


def wall_segments(previous: dict | None, seconds: float) -> dict:
    """wall_s (the total over every segment a run trained in: a resume adds one) and
    wall_s_segments (each segment's seconds), given the summary before this segment."""
    previous = previous or {}
    segments = previous.get("wall_s_segments")
    if not isinstance(segments, list):  # a summary written before segments were kept: its wall_s is one
        segments = [previous["wall_s"]] if isinstance(previous.get("wall_s"), (int, float)) else []
    segments = [*segments, round(seconds, 1)]
    return {"wall_s": round(sum(segments), 1), "wall_s_segments": segments}


# RunDir(d).read_summary() and .update_summary(...) for a caller holding only a path (the tests of
# nothing lost name them); qbn's own modules ask the class.
def read_summary(run_dir: str | Path) -> dict | None:
    return RunDir(run_dir).read_summary()


def update_summary(run_dir: str | Path, /, **fields: Any) -> dict:
    return RunDir(run_dir).update_summary(**fields)
