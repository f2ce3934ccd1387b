"""The run directory (docs/architecture.md): what a run writes about itself and how to read it."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

SUMMARY = "summary.json"


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


def write_json(path: str | Path, data: dict) -> None:
    """Write atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")  # two writers never share a temporary file
    tmp.write_text(json.dumps(_clean(data), indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def read_summary(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / SUMMARY
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def update_summary(run_dir: str | Path, /, **fields: Any) -> dict:
    """Merge fields into summary.json (instruments add their totals this way)."""
    summary = read_summary(run_dir) or {}
    summary.update(fields)
    write_json(Path(run_dir) / SUMMARY, summary)
    return summary


def run_config(run_dir: str | Path):
    """The composed config Hydra saved for the run."""
    path = Path(run_dir) / ".hydra" / "config.yaml"
    return OmegaConf.load(path) if path.exists() else None
