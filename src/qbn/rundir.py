"""The run directory (docs/architecture.md): its layout (RunDir: every path of a run directory is
built here and nowhere else), what a run writes about itself and how to read it."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import DamagedFileError, OutputError


def _entry(*parts: str) -> property:
    """A RunDir property: the path of the entry `parts` (names relative to the run directory)."""
    return property(lambda run: run.root.joinpath(*parts))


class RunDir:
    """The layout of one run directory. Other modules ask it for paths (`RunDir(d).last_ckpt`) and
    never spell a name themselves, so a file moves by one edit here. The names (relative to the
    directory) are class attributes: an instrument declares the entries it writes with them
    (`writes = (RunDir.SIGNS, RunDir.SIGNS_JSON)`), and what `overwrite=true` clears is derived from
    those declarations and CORE (qbn.run_outputs)."""

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


SUMMARY = RunDir.SUMMARY


def _clean(value: Any) -> Any:
    """JSON-safe: tensors to numbers, NaN to None."""
    if hasattr(value, "item") and getattr(value, "numel", lambda: 2)() == 1:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def cannot_write(path: str | Path, error: OSError) -> OutputError:
    """One line for an output path the system refused (read-only, under a file, a directory in the way)."""
    where = f" ({error.filename})" if error.filename and str(error.filename) != str(path) else ""
    return OutputError(f"cannot write {path}: {(error.strerror or type(error).__name__).lower()}{where}; "
                       "choose a writable place")


@contextmanager
def replaced(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`, renamed onto it when the block ends without an error;
    on any error the temporary file is removed (nothing half-written, nothing left behind) and an
    OSError becomes one OutputError naming `path`."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two writers never share a temporary file
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        raise cannot_write(path, e) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def check_can_write(*paths: str | Path) -> None:
    """OutputError, before anything is written, for an output file that cannot be written: a
    directory where the file belongs, a path under a regular file, or a read-only place."""
    for path in map(Path, paths):
        if path.is_dir():
            raise OutputError(f"cannot write {path}: a directory is there; give a file path")
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise OutputError(f"cannot write {path}: {folder} is a file, not a directory; choose a writable place")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write {path}: {'its folder' if folder == path.parent else folder} is read-only; "
                              "choose a writable place")
        if path.exists() and not os.access(path, os.W_OK):
            raise OutputError(f"cannot write {path}: the file is read-only; choose a writable place")


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write atomically (a reader never sees half a file); OutputError when it cannot be written."""
    with replaced(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: dict) -> None:
    """Write atomically (a reader never sees half a file)."""
    write_text(path, json.dumps(_clean(data), indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    """A JSON file qbn wrote, or None when it is absent; DamagedFileError (naming the file) when it
    cannot be read or is not JSON."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else f"not valid JSON: {str(e).splitlines()[0]}"
        raise DamagedFileError(f"{path} is damaged ({why})") from None


def read_summary(run_dir: str | Path) -> dict | None:
    """A run's summary.json, None when there is none; DamagedFileError when it does not read as a
    JSON object (a damaged summary is never taken for a missing one)."""
    path = RunDir(run_dir).summary
    summary = read_json(path)
    if summary is not None and not isinstance(summary, dict):
        raise DamagedFileError(f"{path} is damaged (a JSON {type(summary).__name__}, not an object)")
    return summary


def read_summary_or_none(run_dir: str | Path) -> dict | None:
    """read_summary, a damaged file read as absent (for listings that name damaged runs elsewhere)."""
    try:
        return read_summary(run_dir)
    except DamagedFileError:
        return None


def wall_segments(previous: dict | None, seconds: float) -> dict:
    """wall_s (the total over every segment a run trained in: a resume adds one) and
    wall_s_segments (each segment's seconds), given the summary before this segment."""
    previous = previous or {}
    segments = previous.get("wall_s_segments")
    if not isinstance(segments, list):  # a summary written before segments were kept: its wall_s is one
        segments = [previous["wall_s"]] if isinstance(previous.get("wall_s"), (int, float)) else []
    segments = [*segments, round(seconds, 1)]
    return {"wall_s": round(sum(segments), 1), "wall_s_segments": segments}


def update_summary(run_dir: str | Path, /, **fields: Any) -> dict:
    """Merge fields into summary.json (instruments add their totals this way)."""
    summary = read_summary(run_dir) or {}
    summary.update(fields)
    write_json(RunDir(run_dir).summary, summary)
    return summary


def run_config(run_dir: str | Path):
    """The composed config Hydra saved for the run; DamagedFileError when it does not load."""
    return read_yaml(RunDir(run_dir).config_yaml)


def read_yaml(path: str | Path):
    """A YAML config qbn saved (OmegaConf), None when absent; DamagedFileError when it does not load."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return OmegaConf.load(path)
    except (OSError, UnicodeDecodeError, OmegaConfBaseException, yaml.YAMLError, ValueError) as e:
        raise DamagedFileError(f"{path} is damaged ({str(e).splitlines()[0][:200]})") from None
