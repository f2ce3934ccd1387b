"""Helpers for tests of the promise "results are sacred": every file of a run directory with its
bytes (to compare before and after a command), a command's one-line refusal, and a directory made
read-only for real, also for root (for whom file modes are no barrier)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def assert_unchanged(folder: Path, before: dict[str, bytes]) -> None:
    """The same files with the same bytes as `before` (files(folder) taken earlier): none added, none removed."""
    after = files(folder)
    assert sorted(after) == sorted(before), set(after) ^ set(before)
    assert [k for k in before if before[k] != after[k]] == []


def one_line(err: str, *needles: str) -> str:
    """A refusal's stderr: exactly one `qbn: ` line, holding every needle, and no traceback."""
    assert "Traceback" not in err, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("qbn: ")]
    assert len(lines) == 1, err[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def temporary_files(folder: Path) -> list[str]:
    """Files a failed atomic write would have left behind (*.tmp) under `folder`."""
    return sorted(str(p) for p in Path(folder).rglob("*.tmp"))


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """`folder` and everything under it made unwritable for this process: file modes for a user,
    the immutable attribute (chattr +i) for root. Raises OSError where neither can be set (a test
    then skips, saying why)."""
    folder = Path(folder)
    if os.geteuid() != 0:
        paths = [folder, *folder.rglob("*")]
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p in reversed(paths):
                p.chmod(modes[p])
        return
    if not shutil.which("chattr"):
        raise OSError("running as root without chattr: no way to make a directory read-only for root")
    r = subprocess.run(["chattr", "-R", "+i", str(folder)], capture_output=True, text=True)
    if r.returncode:
        subprocess.run(["chattr", "-R", "-i", str(folder)], capture_output=True)
        raise OSError(f"running as root and chattr +i is not supported here: {r.stderr.strip()[:200]}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-R", "-i", str(folder)], check=True, capture_output=True)
