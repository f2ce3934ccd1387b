"""`python -m qbn.train`: train one (binary-weight) network, or a sweep with -m.

    python -m qbn.train model=resnet18 scaling=learnable
    python -m qbn.train -m scaling=none,xnor,learnable seed=0,1,2
    python -m qbn.train resume=outputs/train/2026-11-26_10-00-00_000000 trainer.max_epochs=60

Every run leaves its run directory (docs/architecture.md): .hydra/, summary.json, metrics.csv,
checkpoints/, and what the instruments write. A run that fails writes summary.json with status
"failed" and the error, and exits non-zero; in a multirun the other jobs go on and the sweep
exits non-zero at its end.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from .binary import binary_param_count
from .build import build_callbacks, build_datamodule, build_loggers, set_tf32
from .checkpoint import check_compatible, load_checkpoint
from .config import (  # importing qbn.config registers its resolvers before Hydra composes
    CONFIG_DIR,
    check_choices,
    flatten,
)
from .errors import QbnError
from .loggers import wandb_summary
from .module import build_module
from .quiet import quiet_libraries
from .report import log_figures, write_report
from .rewind import override_keys, rewound_config, start_checkpoint
from .run_guard import RUN_SETTINGS
from .run_outputs import RUN_OUTPUTS
from .rundir import RunDir, wall_segments
from .schema import check_config, compose_train, optimized_metric, sweep_jobs

log = logging.getLogger("qbn.train")

# Ctrl-C and SIGTERM (a cluster's time limit, a killed job): the run can resume from its last checkpoint.
STOPPED = (KeyboardInterrupt, SIGTERMException)


def _run_dir() -> Path:
    return Path(HydraConfig.get().runtime.output_dir)


def _sweep_name() -> str | None:
    hc = HydraConfig.get()
    return Path(hc.sweep.dir).name if hc.mode == RunMode.MULTIRUN else None


def train(cfg: DictConfig) -> dict:
    """Train, test and record one run in the current Hydra run directory; returns the summary.
    A directory holding an earlier run's results (completed, or resumed from) is written only once
    every check has passed; a refusal leaves it byte for byte as it was (qbn.rundir.RunDir)."""
    quiet_libraries()
    run_dir, hc = _run_dir(), HydraConfig.get()
    run = RunDir(run_dir)
    taken, start, prior = False, time.time(), None
    # DDP's other ranks start (inside rank zero's fit) in a directory rank zero has taken: they
    # train alongside it and write nothing there
    writer = not rank_zero_only.rank
    try:
        check_config(cfg)   # every typed option (overwrite=yes_please, seed=abc, ...) before anything starts
        # a rewound run trains with its trunk's recipe: a new config, made before anything is built
        cfg = rewound_config(cfg, run_dir, override_keys(hc.overrides.task))
        datamodule = build_datamodule(cfg)  # reads only; fills in what the data decides (num_classes)
        claim = run.check_can_train(cfg, RUN_SETTINGS)
        if claim.action == "skip":
            run.leave_untouched()
            log.info("%s already completed (test/acc %s); skipping. overwrite=true retrains it.", run_dir,
                     claim.previous.get("test/acc"))
            return claim.previous
        if not claim.protects and writer:  # a new or unfinished directory: take it now, so a failure is recorded there
            taken = run.take(claim, cfg, hc, RUN_OUTPUTS)
        start = time.time()
        prior = claim.previous if claim.action == "resume" else None  # its wall_s segments go on
        set_tf32(cfg.allow_tf32)
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule.prepare_data()
        model = build_module(cfg)
        callbacks = build_callbacks(cfg)   # every instrument, from cfg.callbacks only
        ckpt_path, resume_epoch = claim.checkpoint, None
        if ckpt_path is not None:
            ckpt = load_checkpoint(ckpt_path)
            check_compatible(ckpt["state_dict"], model, f"checkpoint {ckpt_path}")
            resume_epoch = int(ckpt.get("epoch", 0))
            log.info("resuming from %s (after epoch %d)", ckpt_path, resume_epoch + 1)
        elif cfg.qbn.from_ckpt:
            load_checkpoint(cfg.qbn.from_ckpt)  # a damaged file is refused before a protected directory is touched
        if not taken and writer:
            taken = run.take(claim, cfg, hc, RUN_OUTPUTS)
        return _fit(cfg, run, datamodule, model, callbacks, ckpt_path, resume_epoch, start, prior)
    except BaseException as e:
        if taken:
            run.record_failure("interrupted" if isinstance(e, STOPPED) else "failed", e,
                               wall_segments(prior, time.time() - start),
                               with_traceback=not isinstance(e, (QbnError, *STOPPED)))
        elif writer:
            run.forget_if_made()
            run.note_refusal(hc, e)
        raise


def _fit(cfg, run: RunDir, datamodule, model, callbacks, ckpt_path, resume_epoch, start, prior) -> dict:
    run_dir = run.root
    summary = {
        "status": "running", "model": cfg.model.name, "scaling": cfg.scaling.name if cfg.binary.enabled else "fp",
        "binary": bool(cfg.binary.enabled), "dataset": cfg.dataset.name, "seed": cfg.seed,
        "optimizer": cfg.optimizer.name, "lr": cfg.optimizer.lr, "scheduler": cfg.scheduler.name,
        "max_epochs": cfg.trainer.max_epochs, "params": sum(p.numel() for p in model.parameters()),
        "binarized_params": binary_param_count(model.net), "run_dir": str(run_dir),
    }
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        summary["overrides"] = list(HydraConfig.get().overrides.task)
    if not rank_zero_only.rank:  # one writer: DDP's other ranks run this function too
        run.mark_running(summary, fresh=ckpt_path is None)

    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks,
        logger=build_loggers(cfg, run_dir, _sweep_name(), resume_epoch), default_root_dir=str(run_dir), _convert_="all")
    if ckpt_path is None:
        ckpt_path = start_checkpoint(callbacks)  # a rewound run with weights=epoch:J: the trunk's state
    trainer.fit(model, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
    if trainer.interrupted:
        raise KeyboardInterrupt
    results = {"epochs": trainer.current_epoch, "global_step": trainer.global_step}
    metrics = {k: v for k, v in trainer.callback_metrics.items()}
    for key in ("val/acc", "val/acc_best", "train/loss_epoch", "train/acc"):
        if key in metrics:
            results[key] = float(metrics[key])
    if cfg.test_after_fit and not cfg.trainer.fast_dev_run:
        test = trainer.test(model, datamodule=datamodule, verbose=False)
        results.update({k: float(v) for k, v in (test[0] if test else {}).items()})
    results.update(wall_segments(prior, time.time() - start))  # wall_s: every segment of the run, this one added
    results["status"] = "completed"
    summary = {**summary, **results}   # DDP's other ranks return it too (no spurious missing test/acc)
    if trainer.is_global_zero:
        summary = run.update_summary(**results)
        wandb_summary(trainer.loggers, flatten(summary))
        if cfg.report:
            try:  # the report reads the run directory only; its failure must not fail the run
                log.info("report: %s", write_report(run_dir))
                log_figures(trainer.loggers, run_dir)
            except Exception as e:  # noqa: BLE001
                log.warning("report for %s failed: %s (rebuild it with python -m qbn.report %s)", run_dir, e, run_dir)
    _finish_wandb()
    return summary


def _finish_wandb() -> None:
    """One W&B run per job: close it so the next job of a multirun starts its own."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


def _stopped_advice(error: BaseException) -> str:
    """What will work after Ctrl-C or SIGTERM: resume= only when there is a checkpoint to resume from."""
    run_dir, hc = _run_dir(), HydraConfig.get()
    stopped = f"run stopped by {type(error).__name__}"
    if hc.mode == RunMode.MULTIRUN:
        return (f"{stopped}; run the same sweep command again with hydra.sweep.dir={hc.sweep.dir}: completed jobs are "
                "skipped, interrupted ones resume")
    if not RunDir(run_dir).last_ckpt.exists():
        return f"{stopped} during its first epoch, before any checkpoint: nothing to resume; start it again"
    options = [o for o in hc.overrides.task if o.split("=", 1)[0] not in ("resume", "hydra.run.dir", "overwrite")]
    command = " ".join(options + [f"resume={run_dir}"])
    return f"{stopped}; resume it with: python -m qbn.train {command}".replace("  ", " ")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        summary = train(cfg)
    except BaseException as e:  # noqa: BLE001  train() recorded it in the run directory if it was its own
        _finish_wandb()
        multirun = HydraConfig.get().mode == RunMode.MULTIRUN
        if isinstance(e, QbnError):
            print(f"qbn: {e}", file=sys.stderr)
        elif isinstance(e, STOPPED):
            log.error("%s", _stopped_advice(e))
        else:
            log.error("run failed: %s (traceback in %s)", e, RunDir(_run_dir()).error)
        if multirun and not isinstance(e, STOPPED):
            return None  # the other jobs go on; the sweep exits non-zero at its end
        sys.exit(130 if isinstance(e, STOPPED) else 1)
    acc = summary.get("test/acc")
    metric = optimized_metric(cfg)  # what a sweeper (hparams_search=optuna) maximises
    if not rank_zero_only.rank:  # DDP: one rank speaks
        if acc is not None:
            log.info("test accuracy %.2f %% (%s)", 100 * acc, _run_dir())
        if summary.get(metric) is None and (cfg.get("optimized_metric") or cfg.test_after_fit):
            log.error("optimized_metric=%s: the run's summary.json has no such value", metric)
    return summary.get(metric)


def check_command_line(argv: list[str]) -> None:
    """Every job's config composed and checked before the first one starts (a sweep `seed=0,abc`
    would otherwise train seed=0 before Hydra's multi-line error for `abc`): a config group option
    that names no file (model=resnet99, not Hydra's list), a value of the wrong type, range or choice."""
    check_choices(argv, CONFIG_DIR)
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    for job in sweep_jobs(overrides):
        check_config(compose_train(job))


def cli() -> int:
    """The `qbn-train` console script and `python -m qbn.train` (main returns the test accuracy, which
    must not become the exit status). A mistake on the command line is one line before anything starts."""
    try:
        check_command_line(sys.argv[1:])
    except QbnError as e:
        print(f"qbn: {e}", file=sys.stderr)
        return 1
    main()
    return 0


if __name__ == "__main__":
    sys.exit(cli())
