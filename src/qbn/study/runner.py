"""Run the study's plan, resumably: each job is an ordinary `python -m qbn.train` process whose
run directory is <study dir>/<stage>/<job>. A second invocation reads every run directory's
summary.json first: completed runs are skipped, interrupted ones resume from their last.ckpt
(qbn.train does that by itself), failed ones run again. Progress: a line per stage
(`scaling: 15/15 done, 0 to run`), a line per finished run, and an estimate of the time left
from the seconds per epoch the completed runs took."""

from __future__ import annotations

import fcntl
import fnmatch
import logging
import os
import platform
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import torch
from omegaconf import DictConfig

from .. import __version__
from ..config import compose_train
from ..errors import DamagedFileError, QbnError
from ..rewind.spec import parse_signs, parse_weights
from ..rundir import read_json, read_summary, write_json
from ..schema import STUDY_SCHEMAS, check_config, check_schema
from . import submit
from .plan import STAGES, Job, plan

log = logging.getLogger("qbn.study")
STUDY_JSON = "study.json"


class StudyError(QbnError):
    pass


def job_state(run_dir: Path, export: bool = False) -> str:
    """done | new | interrupted | failed | unpacked (trained, not yet packed and evaluated); a damaged
    summary.json is a StudyError naming it (the study cannot tell whether the run is done)."""
    try:
        s = read_summary(run_dir)
    except DamagedFileError as e:
        raise StudyError(f"{e}: the study cannot tell whether that run is done; move the run directory away "
                         "(or delete it) and run the study again to redo it") from None
    if s is None:
        return "new"
    status = s.get("status")
    if status == "completed":
        return "unpacked" if export and "export/test_acc" not in s else "done"
    return "failed" if status == "failed" else "interrupted"  # "running" with no process: killed


def _duration(seconds: float) -> str:
    m = round(seconds / 60)
    return f"{m} min" if m < 90 else f"{m // 60} h {m % 60:02d} min"


class Runner:
    def __init__(self, cfg: DictConfig):
        check_schema(cfg, STUDY_SCHEMAS)   # the study's own options typed (report=maybe is one line)
        self.cfg = cfg
        self.dir = Path(cfg.dir)
        read_json(self.dir / STUDY_JSON)   # the study's own record: a damaged one is named before anything runs
        self.plan = plan(cfg)
        unknown = [s for s in cfg.stages if s not in STAGES]
        if unknown:
            raise StudyError(f"stages={list(cfg.stages)}: unknown stage {unknown[0]}; choose from {', '.join(STAGES)}")
        self.jobs = {j.key: j for jobs in self.plan.values() for j in jobs}   # every job: `needs` look here
        if cfg.get("only"):  # some runs only (a glob over <stage>/<run>), e.g. to redo one
            self.plan = {s: [j for j in jobs if fnmatch.fnmatch(j.key, cfg.only)] for s, jobs in self.plan.items()}
            if not any(self.plan[s] for s in cfg.stages):
                raise StudyError(f"only={cfg.only} matches no run of stages {list(cfg.stages)} (runs are named <stage>/<run>, "
                                 f"e.g. {next(iter(self.jobs))})")
        self.failed: list[str] = []
        self.waiting: list[str] = []
        self.timings: list[tuple[int, float]] = []  # (epochs, wall seconds) of the runs trained now
        self.stopping = False
        self._slot = threading.local()   # which of the `jobs` run slots this thread is
        self._record_lock = threading.Lock()
        self._recorded = False   # this invocation is in study.json (once it trains or packs a run)
        self.gpus = _gpu_count()
        if cfg.launcher != "local" and cfg.launcher not in submit.CLUSTERS:
            raise StudyError(f"launcher={cfg.launcher}: choose local, slurm or submitit_local")
        self.executor = None if cfg.launcher == "local" else submit.executor(cfg.launcher, self.dir / ".submitit", cfg.submitit)

    # ---- state and estimates ---------------------------------------------------------------
    def state(self, job: Job) -> str:
        return job_state(self.dir / job.key, job.export)

    def seconds_per_epoch(self) -> tuple[float, str]:
        """Wall seconds per epoch of a run, process start included: from the runs this invocation
        trained, else from the completed runs' summary.json (training only), else the scale's guess."""
        if self.timings:
            return sum(t for _, t in self.timings) / max(1, sum(e for e, _ in self.timings)), "measured on this invocation's runs"
        wall = epochs = 0.0
        for job in self.jobs.values():
            s = read_summary(self.dir / job.key) or {}
            if s.get("status") == "completed" and s.get("wall_s") and s.get("epochs"):
                wall += s["wall_s"]
                epochs += job.epochs
        if epochs:
            return wall / epochs, "measured on the completed runs' training"
        return float(self.cfg.scale.seconds_per_epoch), "the scale's first guess"

    def left(self, jobs: list[Job]) -> float:
        spe, _ = self.seconds_per_epoch()
        return sum(max(1, j.epochs) for j in jobs) * spe / max(1, self.cfg.jobs)

    def stage_line(self, stage: str) -> str:
        jobs = self.plan[stage]
        states = [self.state(j) for j in jobs]
        done = states.count("done")
        todo = [j for j, st in zip(jobs, states, strict=True) if st != "done"]
        extra = [f"{states.count(k)} {k}" for k in ("interrupted", "failed", "unpacked") if states.count(k)]
        left = self.left(todo)
        return (f"{stage}: {done}/{len(jobs)} done, {len(todo)} to run" + (f" ({', '.join(extra)})" if extra else "")
                + (f", about {_duration(left)} left" if todo else ""))

    def total_line(self) -> str:
        todo = [j for s in self.cfg.stages for j in self.plan[s] if self.state(j) != "done"]
        spe, source = self.seconds_per_epoch()
        total = sum(len(self.plan[s]) for s in self.cfg.stages)
        return (f"study {self.dir}: {total - len(todo)}/{total} runs done; about {_duration(self.left(todo))} left "
                f"at {spe:.0f} s per epoch ({source}), {self.cfg.jobs} at a time")

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
            print(f"  {job.key}: waits for {', '.join(missing)} (not complete; the {missing[0].split('/')[0]} stage "
                  f"runs them: python -m qbn.study scale={self.cfg.scale.name} 'stages=[{missing[0].split('/')[0]}]')", flush=True)
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
        s = read_summary(run_dir) or {}
        if s.get("status") == "completed" and job.export:
            dataset = [o for o in job.overrides if o.startswith(("dataset", "paths.data_dir"))]
            with open(log_path, "a") as out:
                code = self.launch([sys.executable, "-m", "qbn.study.pack", str(run_dir), *dataset], out, log_path, self.job_env())
            s = read_summary(run_dir) or {}
            if code or "export/test_acc" not in s:  # reported now, packed again next time
                s = {**s, "status": "failed", "error": f"packing or evaluating the file failed (exit {code})"}
        if s.get("status") == "completed":
            if before == "new":
                self.timings.append((max(1, job.epochs), time.time() - start))
            acc = s.get("export/test_acc", s.get("test/acc"))
            print(f"  {job.key}: completed ({'resumed, ' if before == 'interrupted' else ''}test acc "
                  f"{100 * acc:.2f} %, {time.time() - start:.0f} s)", flush=True)
        else:
            self.failed.append(job.key)
            print(f"  {job.key}: {s.get('status', 'failed')}: {s.get('error', 'no summary.json')} "
                  f"(log: {log_path})", flush=True)

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
                self.stopping = True   # no worker starts another run
                stop_live_runs()
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            for job in todo:
                self.run_job(job)

    def check_runs(self) -> None:
        """Before the first run trains: the runs' options (the scale's and train=[...]) typed, once per
        stage on its first run's composed config, and every run's rewind.signs / rewind.weights parsed."""
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

    def run(self) -> int:
        self.check_runs()
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StudyError(f"another python -m qbn.study is running on {self.dir}; wait for it (or stop it) and run again") from None
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
            print(f"study: {len(self.failed)} runs failed ({', '.join(self.failed[:5])}{', ...' if len(self.failed) > 5 else ''}); "
                  "the same command runs them again", flush=True)
        if self.waiting:
            print(f"study: {len(self.waiting)} runs wait for runs of an earlier stage", flush=True)
        return 1 if self.failed or self.waiting else 0


def _gpu_count() -> int:
    return torch.cuda.device_count()


LIVE: set[subprocess.Popen] = set()   # the runs training now (several with jobs > 1)


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
    itself as interrupted and resumes from its last.ckpt next time; cancel every submitted job."""
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


def _commit() -> str:
    try:
        root = Path(__file__).resolve().parents[3]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except OSError:
        pass
    return f"qbn {__version__} (not a git checkout)"


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {gpu}; "
            f"Python {platform.python_version()}, torch {torch.__version__}")


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
    data.setdefault("invocations", []).append({
        "command": shlex.join(["python", "-m", "qbn.study", *sys.argv[1:]]), "commit": _commit(), "machine": machine(),
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")})
    write_json(path, data)
