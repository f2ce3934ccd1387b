"""Run the study's plan, resumably: each job is an ordinary `python -m qbn.train` process whose
run directory is <study dir>/<stage>/<job>. A second invocation reads every run directory's
summary.json first: completed runs are skipped, interrupted ones resume from their last checkpoint
(qbn.train does that by itself), failed ones run again. One invocation per study directory (a
lock file). Launching processes: qbn.study.launch (cluster jobs: qbn.study.submit); progress
lines and time estimates: qbn.study.progress; study.json: qbn.study.provenance."""

from __future__ import annotations

import fcntl
import fnmatch
import logging
import os
import queue
import shlex
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omegaconf import DictConfig

from ..errors import DamagedFileError, QbnError
from ..file_io import read_json
from ..rewind.spec import parse_freeze_at, parse_signs, parse_weights
from ..rundir import RunDir
from ..schema import check_config, check_fields, compose_train
from . import submit
from .launch import LIVE, _gpu_count, _run_process, _stop_on_sigterm, stop_live_runs
from .plan import STAGES, Job, plan
from .progress import Progress, _duration
from .provenance import STUDY_JSON, record_invocation

__all__ = ["LIVE", "STUDY_JSON", "Runner", "StudyError", "job_state"]

log = logging.getLogger("qbn.study")


class StudyError(QbnError):
    pass


def job_state(run_dir: Path, export: bool = False) -> str:
    """done | new | interrupted | failed | unpacked (trained, not yet packed and evaluated); a damaged
    summary.json is a StudyError naming it (the study cannot tell whether the run is done)."""
    try:
        s = RunDir(run_dir).read_summary()
    except DamagedFileError as e:
        raise StudyError(f"{e}: the study cannot tell whether that run is done; move the run directory away "
                         "(or delete it) and run the study again to redo it") from None
    if s is None:
        return "new"
    status = s.get("status")
    if status == "completed":
        return "unpacked" if export and "export/test_acc" not in s else "done"
    return "failed" if status == "failed" else "interrupted"  # "running" with no process: killed


class Runner:
    def __init__(self, cfg: DictConfig):
        check_fields(cfg)   # the study's own options: ranges and choices (types: Hydra, composing it)
        self.cfg = cfg
        self.dir = Path(cfg.dir)
        read_json(self.dir / STUDY_JSON)   # the study's own record: a damaged one is named before anything runs
        self.plan = plan(cfg)
        unknown = [s for s in cfg.stages if s not in STAGES]
        if unknown:
            raise StudyError(f"stages={list(cfg.stages)}: unknown stage {unknown[0]}; choose from {', '.join(STAGES)}")
        self.jobs = {j.key: j for jobs in self.plan.values() for j in jobs}  # every job: `needs` look here
        if cfg.get("only"):  # some runs only (a glob over <stage>/<run>), e.g. to redo one
            self.plan = {s: [j for j in jobs if fnmatch.fnmatch(j.key, cfg.only)] for s, jobs in self.plan.items()}
            if not any(self.plan[s] for s in cfg.stages):
                raise StudyError(
                    f"only={cfg.only} matches no run of stages {list(cfg.stages)} (runs are named <stage>/<run>, "
                    f"e.g. {next(iter(self.jobs))})"
                )
        self.failed: list[str] = []
        self.waiting: list[str] = []
        self.timings: list[tuple[int, float]] = []  # (epochs, wall seconds) of the runs trained now
        self.stopping = False
        self._slot = threading.local()  # which of the `jobs` run slots this thread is
        self._record_lock = threading.Lock()
        self._recorded = False  # this invocation is in study.json (once it trains or packs a run)
        self.gpus = _gpu_count()
        if cfg.launcher != "local" and cfg.launcher not in submit.CLUSTERS:
            raise StudyError(f"launcher={cfg.launcher}: choose local, slurm or submitit_local")
        self.executor = (
            None if cfg.launcher == "local" else submit.executor(cfg.launcher, self.dir / ".submitit", cfg.submitit)
        )
        self.progress = Progress(cfg, self.dir, self.plan, self.jobs, self.state, self.timings)

    # ---- state and estimates (qbn.study.progress)
    def state(self, job: Job) -> str:
        return job_state(self.dir / job.key, job.export)

    def stage_line(self, stage: str) -> str:
        return self.progress.stage_line(stage)

    def total_line(self) -> str:
        return self.progress.total_line()

    # ---- running -------------------------------------------------------------------------------
    def command(self, job: Job) -> list[str]:
        return [sys.executable, "-m", "qbn.train", *job.overrides, f"hydra.run.dir={self.dir / job.key}"]

    def job_env(self) -> dict[str, str]:
        """Side-by-side runs share the machine: on CPUs each gets cores / jobs threads (two threads
        per process on 2 shared cores spin against each other); with GPUs each its own GPU."""
        env = dict(os.environ)
        if self.cfg.jobs > 1:
            env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.cfg.jobs)))
            slot = getattr(self._slot, "index", None)
            if slot is not None and self.gpus >= self.cfg.jobs and "CUDA_VISIBLE_DEVICES" not in os.environ:
                env["CUDA_VISIBLE_DEVICES"] = str(slot)
        return env

    def launch(self, command: list[str], out, log_path: Path, env: dict[str, str]) -> int:
        """Run one command to its end: a process here (launcher=local), else a submitit job that
        inherits this environment (the cluster sets its own threads and GPUs)."""
        if self.executor is None:
            return _run_process(command, out, env)
        out.flush()
        return submit.run_job(self.executor, command, log_path)

    def run_job(self, job: Job) -> None:
        if self.stopping:
            return
        run_dir = self.dir / job.key
        missing = [k for k in job.needs if self.state(self.jobs[k]) != "done"]
        if missing:
            self.waiting.append(job.key)
            print(
                f"  {job.key}: waits for {', '.join(missing)} (not complete; the {missing[0].split('/')[0]} stage "
                f"runs them: python -m qbn.study scale={self.cfg.scale.name} 'stages=[{missing[0].split('/')[0]}]')",
                flush=True,
            )
            return
        self._record_start()
        before = self.state(job)
        start = time.time()
        log_path = self.dir / job.stage / "logs" / f"{job.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if before != "unpacked":
            env = self.job_env()
            with open(log_path, "a") as out:
                command = self.command(job)
                out.write(f"\n$ {shlex.join(command)}\n")
                out.flush()
                code = self.launch(command, out, log_path, env)
            if code in (130, -2):
                raise KeyboardInterrupt
        s = RunDir(run_dir).read_summary() or {}
        if s.get("status") == "completed" and job.export:
            dataset = [o for o in job.overrides if o.startswith(("dataset", "paths.data_dir"))]
            with open(log_path, "a") as out:
                code = self.launch(
                    [sys.executable, "-m", "qbn.study.pack", str(run_dir), *dataset], out, log_path, self.job_env()
                )
            s = RunDir(run_dir).read_summary() or {}
            if code or "export/test_acc" not in s:  # reported now, packed again next time
                s = {**s, "status": "failed", "error": f"packing or evaluating the file failed (exit {code})"}
        if s.get("status") == "completed":
            if before == "new":
                self.timings.append((max(1, job.epochs), time.time() - start))
            acc = s.get("export/test_acc", s.get("test/acc"))
            print(
                f"  {job.key}: completed ({'resumed, ' if before == 'interrupted' else ''}test acc "
                f"{100 * acc:.2f} %, {time.time() - start:.0f} s)",
                flush=True,
            )
        else:
            self.failed.append(job.key)
            print(
                f"  {job.key}: {s.get('status', 'failed')}: {s.get('error', 'no summary.json')} (log: {log_path})",
                flush=True,
            )

    def _record_start(self) -> None:
        """Cite this invocation in study.json when it first trains or packs a run: one that finds
        everything done changes nothing in the study directory (study.json, RESULTS.md)."""
        with self._record_lock:
            if not self._recorded:
                record_invocation(self.dir, self.cfg)
                self._recorded = True

    def run_stage(self, stage: str) -> None:
        print(self.stage_line(stage), flush=True)
        todo = [j for j in self.plan[stage] if self.state(j) != "done"]
        if self.cfg.jobs > 1:
            slots = queue.SimpleQueue()
            for i in range(self.cfg.jobs):
                slots.put(i)

            def in_slot(job: Job) -> None:
                self._slot.index = slots.get()
                try:
                    self.run_job(job)
                finally:
                    slots.put(self._slot.index)

            pool = ThreadPoolExecutor(self.cfg.jobs)
            try:
                list(pool.map(in_slot, todo))
            except KeyboardInterrupt:
                self.stopping = True  # no worker starts another run
                stop_live_runs()
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            for job in todo:
                self.run_job(job)

    def check_runs(self) -> None:
        """Before the first run trains: the runs' options (the scale's and train=[...]) typed, once per
        stage on its first run's composed config, and every run's rewind.signs / rewind.weights /
        rewind.freeze_signs_at parsed."""
        for stage in self.cfg.stages:
            jobs = self.plan[stage]
            if jobs:
                check_config(compose_train(jobs[0].overrides))
            for job in jobs:
                for o in job.overrides:
                    key, _, value = o.partition("=")
                    if key == "rewind.signs":
                        parse_signs(value)
                    elif key == "rewind.weights":
                        parse_weights(value)
                    elif key == "rewind.freeze_signs_at":
                        parse_freeze_at(value)

    def run(self) -> int:
        self.check_runs()
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StudyError(
                    f"another python -m qbn.study is running on {self.dir}; wait for it (or stop it) and run again"
                ) from None
            started = time.time()
            _stop_on_sigterm()
            print(self.total_line(), flush=True)
            try:
                for stage in self.cfg.stages:
                    self.run_stage(stage)
            except KeyboardInterrupt:
                stop_live_runs()
                raise
            for stage in self.cfg.stages:
                print(self.stage_line(stage), flush=True)
            print(f"study: this invocation took {_duration(time.time() - started)}", flush=True)
            if self._recorded:
                record_invocation(self.dir, self.cfg, wall_s=round(time.time() - started))
        if self.failed:
            print(
                f"study: {len(self.failed)} runs failed "
                f"({', '.join(self.failed[:5])}{', ...' if len(self.failed) > 5 else ''}); "
                "the same command runs them again",
                flush=True,
            )
        if self.waiting:
            print(f"study: {len(self.waiting)} runs wait for runs of an earlier stage", flush=True)
        return 1 if self.failed or self.waiting else 0
