"""Runs as cluster jobs: with `launcher=slurm` the study submits each run (and its packing) as a
SLURM job through submitit, the library behind Hydra's submitit launcher, and waits for it,
`jobs` at a time; `launcher=submitit_local` sends the same jobs through submitit's local
executor (processes on this machine), a rehearsal of the cluster path that needs no cluster.

The job runs the very command the local launcher runs, with the job's own Python, its output
appended to the run's log. A job that ends without a result (time limit, node failure,
cancelled) leaves its run interrupted or failed, and the next invocation resumes or reruns it,
as for local runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import QbnError

CLUSTERS = {"slurm": "slurm", "submitit_local": "local"}   # launcher -> submitit's cluster
LIVE_JOBS: set = set()   # submitted jobs not yet finished (cancelled when the study is stopped)


def run_logged(command: list[str], log_path: str) -> int:
    """On the job's node: run `command` (its first item, the submitting Python, replaced by this
    one), stdout and stderr appended to log_path; the exit code."""
    with open(log_path, "a") as out:
        return subprocess.run([sys.executable, *command[1:]], stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=dict(os.environ)).returncode


def executor(launcher: str, folder: Path, parameters: DictConfig):
    """submitit's executor for `launcher`, with the `submitit:` parameters that are set (null: the
    cluster's default); submitit's own files (job scripts, pickles, job logs) go to `folder`."""
    try:
        import submitit
    except ImportError:
        raise QbnError(f"launcher={launcher} needs submitit: pip install 'qbn[launchers]'") from None
    try:
        ex = submitit.AutoExecutor(folder=str(folder), cluster=CLUSTERS[launcher])
    except RuntimeError as e:   # no sbatch/srun on this machine
        raise QbnError(f"launcher={launcher}: {e} Run the study on the cluster's login node, "
                       "or launcher=local here") from None
    params = {k: v for k, v in OmegaConf.to_container(parameters, resolve=True).items() if v is not None}
    if launcher != "slurm":   # submitit's local executor takes no slurm_* parameters
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    try:
        ex.update_parameters(name="qbn-study", **params)
    except (TypeError, ValueError) as e:
        raise QbnError(f"study submitit parameters: {e}") from None
    return ex


def run_job(ex, command: list[str], log_path: Path) -> int:
    """Submit one command, wait for it; its exit code, or 1 when the job ended without one."""
    job = ex.submit(run_logged, command, str(log_path))
    LIVE_JOBS.add(job)
    try:
        return int(job.result())
    except KeyboardInterrupt:
        job.cancel(check=False)   # the study is stopped: so is its job (the run records itself interrupted)
        raise
    except Exception as e:   # noqa: BLE001 - submitit's job errors have no common base; the run says the rest
        with open(log_path, "a") as out:
            out.write(f"\nqbn.study: job {job.job_id} ended without an exit code "
                      f"({type(e).__name__}: {str(e)[:400]})\n")
        return 1
    finally:
        LIVE_JOBS.discard(job)


def cancel_live_jobs() -> None:
    for job in list(LIVE_JOBS):
        job.cancel(check=False)
