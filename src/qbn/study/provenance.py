"""Provenance of a study: study.json cites every invocation that trained or packed a run (its
command line, the commit and the machine), and the wall time of each invocation (the report's
Runs section reads it)."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch
from omegaconf import DictConfig

from .. import __version__
from ..file_io import read_json, write_json

STUDY_JSON = "study.json"


def _commit() -> str:
    try:
        root = Path(__file__).resolve().parents[3]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True, timeout=10
        )
        if out.returncode == 0:
            return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except OSError:
        pass
    return f"qbn {__version__} (not a git checkout)"


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {gpu}; "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def record_invocation(study_dir: Path, cfg: DictConfig, wall_s: int | None = None) -> None:
    """study.json: every invocation's command line, commit and machine (the report cites them);
    with wall_s, the wall time of the invocation this process started."""
    path = study_dir / STUDY_JSON
    data = read_json(path) or {}
    if wall_s is not None:
        data["invocations"][-1]["wall_s"] = wall_s
        write_json(path, data)
        return
    data.setdefault("scale", cfg.scale.name)
    data.setdefault("invocations", []).append(
        {
            "command": shlex.join(["python", "-m", "qbn.study", *sys.argv[1:]]),
            "commit": _commit(),
            "machine": machine(),
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        }
    )
    write_json(path, data)
