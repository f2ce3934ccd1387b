"""The entry point: every model x scaling runs, run directories are complete, sweeps, resume, bad input."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from omegaconf import open_dict

from qbn.aggregate import main as aggregate_main
from qbn.checkpoint import check_compatible, load_checkpoint
from qbn.errors import CheckpointError, ConfigError, DatasetMissingError
from qbn.module import build_module
from qbn.run_guard import RunDirError
from qbn.testing.golden import GOLDEN_OVERRIDES
from qbn.testing.runs import TINY, compose_cfg, compose_run, run_cli, tiny
from qbn.train import train

MODELS = ["resnet20", "resnet32", "resnet56", "resnet18", "resnet34", "vgg_small"]
SCALINGS = ["none", "xnor", "learnable", "lq"]


# One case per CIFAR model and VGG-small and per scaling runs with the fast tests; the whole matrix
# under -m slow (make test-all), the ImageNet ResNets (11M and 21M weights: tens of seconds a run on
# 2 cores) only there. The fast export round trip still builds and packs resnet18.
FAST_CASES = {("resnet20", "xnor"), ("resnet20", "lq"), ("resnet32", "none"), ("resnet56", "xnor"),
              ("vgg_small", "learnable")}

# Counts, exact on any machine: each model on the synthetic data (1 channel, 16 px, 4 classes) has
# `params` parameters with alpha computed from the weights (scaling none, xnor, lq), `binarized` of
# them binarized, and `channels` output channels in its binarized layers: scaling=learnable trains
# one alpha per channel on top.
PARAMS = {  # model: (params, binarized, channels)
    "resnet20": (269_044, 267_264, 672), "resnet32": (463_476, 460_800, 1_120),
    "resnet56": (852_340, 847_872, 2_016), "resnet18": (11_169_732, 11_157_504, 4_736),
    "resnet34": (21_277_892, 21_258_240, 8_448), "vgg_small": (4_584_068, 4_571_136, 1_664)}


def epoch_losses(run_dir) -> list[float]:
    """train/loss_epoch of each epoch, from metrics.csv."""
    with open(run_dir / "metrics.csv") as f:
        return [float(r["train/loss_epoch"]) for r in csv.DictReader(f) if r.get("train/loss_epoch")]


def check_numbers(summary: dict, overrides: dict, run_dir) -> None:
    """A finished 2-epoch run on the synthetic data (classes shift the images' mean: learnable in a few
    steps): its settings those asked for, parameter counts as PARAMS says, a finite loss that falls
    from the first epoch to the second, a training accuracy above chance (1/4), accuracies in [0, 1],
    and what the default instruments add (sign and kernel statistics). The test accuracy is only
    bounded: after 8 steps BatchNorm's running statistics are not settled yet, so eval mode lags."""
    assert summary["status"] == "completed"
    for key, value in overrides.items():
        assert summary[key] == value, key
    params, binarized, channels = PARAMS[summary["model"]]
    assert summary["binarized_params"] == binarized
    assert summary["params"] == params + (channels if summary["scaling"] == "learnable" else 0)
    losses = epoch_losses(run_dir)
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses), losses
    assert losses[1] < 0.8 * losses[0], losses
    assert summary["train/acc"] >= 0.5
    for key in ("train/acc", "val/acc", "val/acc_best", "test/acc"):
        assert math.isfinite(summary[key]) and 0 <= summary[key] <= 1, key
    assert summary["val/acc_best"] >= summary["val/acc"] - 1e-9
    assert 0 <= summary["signs/changed_from_init"] <= 1 and 0 < summary["kernels/entropy"] <= 9
    assert 0 < summary["kernels/top1"] <= summary["kernels/top8"] <= summary["kernels/top32"] <= 1


@pytest.mark.parametrize("model, scaling", [
    pytest.param(m, s, marks=() if (m, s) in FAST_CASES else pytest.mark.slow) for m in MODELS for s in SCALINGS])
def test_every_model_and_scaling_trains(cfg_factory, tmp_path, model, scaling):
    cfg = cfg_factory(*TINY, f"model={model}", f"scaling={scaling}", "trainer.max_epochs=2")
    summary = train(cfg)
    check_numbers(summary, {"model": model, "scaling": scaling, "binary": True, "dataset": "synthetic",
                            "optimizer": "adam", "scheduler": "cosine", "epochs": 2, "global_step": 8},
                  tmp_path / "run")


def test_fast_cases_cover_every_model_but_the_imagenet_resnets_and_every_scaling():
    assert {m for m, _ in FAST_CASES} == set(MODELS) - {"resnet18", "resnet34"}
    assert {s for _, s in FAST_CASES} == set(SCALINGS)


def test_full_precision_baseline(cfg_factory):
    cfg = cfg_factory(*TINY, "binary=fp", "trainer.limit_train_batches=2")
    summary = train(cfg)
    assert summary["binarized_params"] == 0 and summary["scaling"] == "fp" and summary["status"] == "completed"
    assert summary["binary"] is False and math.isfinite(summary["train/loss_epoch"]) and 0 <= summary["test/acc"] <= 1


def test_optimizer_groups_weight_decay(cfg_factory):
    cfg = cfg_factory(*TINY, "optimizer=sgd", "optimizer.weight_decay=1e-4", "optimizer.weight_decay_binary=0.0",
                      "scaling=learnable", "optimizer.weight_decay_scale=0.5")
    module = build_module(cfg)
    groups = {g["name"]: g for g in module.parameter_groups()}
    assert groups["binary"]["weight_decay"] == 0.0 and groups["fp"]["weight_decay"] == 1e-4
    assert groups["scale"]["weight_decay"] == 0.5 and groups["bn"]["weight_decay"] == 0.0
    n = sum(p.numel() for g in groups.values() for p in g["params"])
    assert n == sum(p.numel() for p in module.parameters())


def test_seeded_runs_are_reproducible(shared_run_dir, tmp_path):
    """The shared run (by the CLI) trained again in-process, without its report and figures: the same
    numbers and weights, bit for bit."""
    a = json.loads((shared_run_dir / "summary.json").read_text())
    b = train(compose_cfg(tmp_path / "b", [*GOLDEN_OVERRIDES, "report=false", "callbacks.kernel_stats.figures=false"]))
    assert a["test/acc"] == b["test/acc"] and a["train/loss_epoch"] == b["train/loss_epoch"]
    sa = torch.load(shared_run_dir / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    sb = torch.load(tmp_path / "b/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_continues_epoch_count(cfg_factory, tmp_path):
    run = tmp_path / "r"
    short = ("trainer.limit_train_batches=2", "trainer.limit_val_batches=1")
    first = train(cfg_factory(*TINY, *short, "trainer.max_epochs=1", run_dir=run))
    assert first["epochs"] == 1
    again = train(cfg_factory(*TINY, *short, "trainer.max_epochs=1", run_dir=run))  # completed: skipped, not redone
    assert again == first
    resumed = train(cfg_factory(*TINY, *short, "trainer.max_epochs=3", f"resume={run}", run_dir=run))
    assert resumed["epochs"] == 3 and resumed["global_step"] == 3 * first["global_step"]
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    val_epochs = [int(r["epoch"]) for r in rows if r.get("val/acc")]
    assert val_epochs == [0, 1, 2]  # the first run's epoch kept, the resumed epochs appended
    assert sum(bool(r.get("test/acc")) for r in rows) == 1  # the earlier completion's test row dropped


def test_resume_without_checkpoint_is_clear(tmp_path):
    run = tmp_path / "stopped_early"
    compose_run(run, TINY)  # a run directory whose run stopped before its first checkpoint
    with pytest.raises(RunDirError, match="no checkpoints/last.ckpt to resume from"):
        train(compose_cfg(run, [*TINY, f"resume={run}"]))


def test_checkpoint_of_another_model_is_clear(shared_run_dir, cfg_factory, tmp_path):
    ckpt = load_checkpoint(shared_run_dir)  # resnet20 on digits: 10 classes
    other = build_module(cfg_factory(*TINY, "model=resnet32"))
    with pytest.raises(CheckpointError, match="does not fit this model: .*missing keys"):
        check_compatible(ckpt["state_dict"], other)
    more_classes = cfg_factory(*TINY)
    with open_dict(more_classes):
        more_classes.dataset.num_classes = 7
    with pytest.raises(CheckpointError, match="shape mismatches"):
        check_compatible(ckpt["state_dict"], build_module(more_classes))
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "junk.ckpt")


def test_input_too_small_fails_at_setup(cfg_factory):
    with pytest.raises(ConfigError, match="vgg_small.*too small"):
        build_module(cfg_factory(*TINY, "model=vgg_small", "dataset.image_size=4"))



def test_unknown_choice_lists_options(cfg_factory):
    with pytest.raises(ConfigError, match="^model=resnet1000: there is no model named 'resnet1000'; choose one of "
                                          "resnet18, resnet20, resnet32, resnet34, resnet56, vgg_small$"):
        cfg_factory("model=resnet1000")


def test_cli_run_writes_complete_run_directory(shared_run_dir):
    """The shared run: python -m qbn.train on digits for one epoch with every default instrument."""
    run = shared_run_dir
    for f in (".hydra/config.yaml", "summary.json", "metrics.csv", "checkpoints/last.ckpt", "kernels.json",
              "report.md", "figures/kernels_coverage.png", "figures/kernels_top32.png", "train.log"):
        assert (run / f).exists(), f
    summary = json.loads((run / "summary.json").read_text())
    for key in ("status", "test/acc", "val/acc_best", "epochs", "params", "binarized_params", "model", "scaling",
                "dataset", "seed", "wall_s"):
        assert key in summary, key
    assert summary["status"] == "completed" and summary["test/acc"] > 0.3  # one epoch on digits: 3x chance


def test_failed_run_records_failure(cfg_factory, tmp_path):
    run = tmp_path / "f"
    with pytest.raises(DatasetMissingError, match="dataset 'mnist' not found"):
        train(cfg_factory(*tiny("dataset=mnist", f"dataset.data_dir={tmp_path / 'empty'}"), run_dir=run))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "DatasetMissingError" in summary["error"]


@pytest.mark.slow
def test_cli_failed_run_records_failure(tmp_path):
    r = run_cli("qbn.train", "dataset=mnist", f"dataset.data_dir={tmp_path / 'empty'}", f"paths.output_dir={tmp_path}",
                "name=f")
    assert r.returncode == 1
    assert "qbn: dataset 'mnist' not found" in r.stderr and "Traceback" not in r.stderr
    (run,) = list((tmp_path / "f").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "DatasetMissingError" in summary["error"]


@pytest.mark.slow
def test_cli_unknown_model(tmp_path):
    r = run_cli("qbn.train", "model=nope", f"paths.output_dir={tmp_path}")
    # one line naming the option and every choice, not Hydra's multi-line list
    assert r.returncode != 0 and r.stderr.strip().splitlines() == [
        "qbn: model=nope: there is no model named 'nope'; choose one of resnet18, resnet20, resnet32, resnet34, "
        "resnet56, vgg_small"], r.stderr[-2000:]


@pytest.mark.slow
def test_cli_multirun_two_jobs_joblib_and_failure_isolation(tmp_path, capsys):
    # the joblib launcher pickles the task (python -m qbn.train's functions by value): it must stay picklable
    r = run_cli("qbn.train", "-m", "dataset=digits", "trainer.max_epochs=1", "seed=0,1", f"paths.output_dir={tmp_path}",
                "name=sweep", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert r.returncode == 0, r.stderr[-3000:]
    (sweep,) = list((tmp_path / "sweep").iterdir())
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()) == ["0", "1"]
    assert (sweep / "results.csv").exists() and "seeds" in (sweep / "results.md").read_text()
    seeds = [json.loads((sweep / j / "summary.json").read_text())["seed"] for j in ("0", "1")]
    assert seeds == [0, 1]
    # python -m qbn.aggregate rebuilds results.md from the job directories alone
    (sweep / "results.md").unlink()
    assert aggregate_main([str(sweep)]) == 0
    assert "seeds" in (sweep / "results.md").read_text() and "seeds" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert aggregate_main([str(tmp_path / "empty")]) == 1 and aggregate_main([]) == 2
    # one failing job (a bad val_size) does not stop the other; the sweep exits non-zero at the end
    r = run_cli("qbn.train", "-m", "dataset=digits", "trainer.max_epochs=1", "dataset.val_size=0.1,5000",
                f"paths.output_dir={tmp_path}", "name=bad")
    assert r.returncode == 1
    (sweep,) = list((tmp_path / "bad").iterdir())
    status = [json.loads((sweep / j / "summary.json").read_text())["status"] for j in ("0", "1")]
    assert status == ["completed", "failed"]
    assert "did not complete" in (sweep / "results.md").read_text()
