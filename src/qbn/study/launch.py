"""Launching a study's runs here: each a `python -m qbn.train` (or packing) process, stopped
together when the study is stopped (Ctrl-C, SIGTERM), so each run records itself interrupted and
resumes from its last checkpoint next time; submitted cluster jobs are cancelled too (qbn.study.submit)."""

from __future__ import annotations

import signal
import subprocess
import threading

import torch

from . import submit


def _gpu_count() -> int:
    return torch.cuda.device_count()


LIVE: set[subprocess.Popen] = set()  # the runs training now (several with jobs > 1)


def _run_process(command: list[str], out, env: dict) -> int:
    """Run one process (a qbn.train run, or packing one) to its end."""
    proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    LIVE.add(proc)
    try:
        return proc.wait()
    finally:
        LIVE.discard(proc)


def stop_live_runs() -> None:
    """When the study is stopped (Ctrl-C, SIGTERM), stop every run with SIGTERM, so each records
    itself as interrupted and resumes from its last checkpoint next time; cancel every submitted job."""
    submit.cancel_live_jobs()
    for proc in list(LIVE):
        proc.terminate()
    for proc in list(LIVE):
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()


def _stop_on_sigterm() -> None:
    """SIGTERM (a cluster's time limit, `kill`) stops the study like Ctrl-C does."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
