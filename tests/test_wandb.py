"""W&B without an account: runs go offline by themselves, never prompt, and close after each job."""

from __future__ import annotations

import csv
import json

import pytest

from qbn.build import _wandb_mode, wandb_config
from qbn.testing.runs import TINY, tiny
from qbn.train import train

from .wandb_records import read_run, read_table


def test_mode_auto(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert _wandb_mode("auto") == "online"
    assert _wandb_mode("disabled") == "disabled"


def test_wandb_config_has_every_option_as_one_column(cfg_factory):
    config = wandb_config(cfg_factory("qbn.bits=4", "optimizer.lr=0.003"))
    assert config["optimizer.lr"] == 0.003 and config["model.name"] == "resnet20" and config["qbn.bits"] == 4
    assert not any(k.startswith("hydra.") for k in config)


@pytest.mark.slow  # importing wandb and an offline run take tens of seconds on 2 cores
def test_wandb_run_goes_offline_and_finishes(cfg_factory, monkeypatch, tmp_path):
    import wandb

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    run_dir = tmp_path / "run"
    summary = train(cfg_factory(*TINY, "logger=wandb", run_dir=run_dir))
    assert summary["status"] == "completed"
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and any(offline[0].rglob("*.wandb"))
    assert wandb.run is None  # finished, so the next job of a sweep starts its own run


@pytest.mark.slow
def test_offline_run_holds_config_scalars_summary_charts_and_tables(cfg_factory, tmp_path):
    """A real offline W&B run of a QBN run, read back from its run file: flattened config, per-epoch
    scalars, summary.json's figures, the sign curves and freeze epochs, kernel histogram and
    coverage, the accuracy-vs-bits row, each as the table the W&B chart draws, and the report's figures."""
    run_dir = tmp_path / "run"
    summary = train(cfg_factory(*tiny("logger=wandb", "qbn.bits=4", "report=true", "trainer.max_epochs=2",
                                      "optimizer.lr=0.003"), run_dir=run_dir))
    (run_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    run = read_run(run_file)
    config, history, wb_summary = run["config"], run["history"], run["summary"]

    assert config["optimizer.lr"] == 0.003 and config["model.name"] == "resnet20" and config["qbn.bits"] == 4
    assert [round(v, 6) for v in history["val/acc"]] == [round(v, 6) for v in _epoch_column(run_dir, "val/acc")]
    assert len(history["train/loss_epoch"]) == 2
    for key in ("test/acc", "val/acc_best", "epochs", "bits_per_weight", "kernels/entropy", "signs/E_0.95", "qbn.bits"):
        assert wb_summary[key] == pytest.approx(_flat(summary)[key]), key

    signs = json.loads((run_dir / "signs.json").read_text())
    curves = read_table(run_file, history["signs/curves"][0])
    assert curves["columns"] == ["epoch", "d_e", "c_e", "stable_share"]
    assert [r[1] for r in curves["data"]] == pytest.approx(signs["overall"]["d_e"])
    assert [r[3] for r in curves["data"]] == pytest.approx(signs["overall"]["stable_fraction"])
    freeze = read_table(run_file, history["signs/freeze_epochs"][0])
    assert {r[0]: r[3] for r in freeze["data"]} == {k: v["E_0.95"] for k, v in signs["layers"].items()}
    by_layer = read_table(run_file, history["signs/stable_share_by_layer"][0])
    assert len(by_layer["data"]) == len(signs["layers"]) * len(signs["epochs"])

    kernels = json.loads((run_dir / "kernels.json").read_text())["overall"]
    hist = read_table(run_file, history["kernels/histogram"][0])
    assert sorted(r[2] for r in hist["data"]) == sorted(kernels["histogram"])
    assert hist["data"][0][1] == kernels["top_ids"][0]
    cover = read_table(run_file, history["kernels/coverage"][0])
    assert [r[1] for r in cover["data"]] == pytest.approx(kernels["coverage"]) and cover["data"][-1][2] == 1.0
    qbn = read_table(run_file, history["qbn/accuracy_bits"][0])
    assert qbn["columns"] == ["method", "n", "budget", "bits_per_weight", "model_bytes", "distill_weight", "test_acc"]
    assert qbn["data"] == [["topk", 4, None, pytest.approx(summary["bits_per_weight"]), summary["model_bytes"], 0.0,
                            pytest.approx(summary["test/acc"])]]

    charts = config["_wandb"]["visualize"]
    for chart in ("signs/d_e_chart", "signs/stable_share_chart", "signs/freeze_epoch_E_0.95_chart",
                  "kernels/histogram_chart", "kernels/coverage_chart"):
        assert chart in charts and history[chart + "_table"][0]["_type"] == "table-file", chart
    figures = {p.stem for p in (run_dir / "figures").glob("*.png")}
    assert figures and all(history[f"report/{f}"][0]["_type"] == "image-file" for f in figures)


def _epoch_column(run_dir, key: str) -> list[float]:
    with open(run_dir / "metrics.csv") as f:
        return [float(r[key]) for r in csv.DictReader(f) if r.get(key)]


def _flat(summary: dict) -> dict:
    from qbn.config import flatten

    return flatten(summary)
