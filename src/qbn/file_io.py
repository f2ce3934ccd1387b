"""Files qbn writes and reads back, in a run directory or elsewhere (a study's own files, a sweep's
table): written atomically (a reader never sees half a file, a failed write leaves nothing behind),
checked before a command writes, and read with a damaged file named (DamagedFileError), never
taken for an absent one. Where a run directory's files are is qbn.rundir's."""

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


def read_yaml(path: str | Path):
    """A YAML config qbn saved (OmegaConf), None when absent; DamagedFileError when it does not load."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return OmegaConf.load(path)
    except (OSError, UnicodeDecodeError, OmegaConfBaseException, yaml.YAMLError, ValueError) as e:
        raise DamagedFileError(f"{path} is damaged ({str(e).splitlines()[0][:200]})") from None
