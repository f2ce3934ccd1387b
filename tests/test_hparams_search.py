"""`hparams_search=optuna`: Hydra's Optuna sweeper searches a BWN's learning rate and weight decay,
maximising val/acc_best (each trial an ordinary run directory)."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from qbn.testing.runs import run_cli, tiny


def test_optuna_preset_composes_a_search_over_lr_and_weight_decay(cfg_factory):
    cfg = cfg_factory("hparams_search=optuna")
    assert cfg.optimized_metric == "val/acc_best" and cfg.hydra.sweeper.direction == "maximize"
    assert set(cfg.hydra.sweeper.params) == {"optimizer.lr", "optimizer.weight_decay"}


@pytest.mark.slow  # a two-trial Optuna sweep by the CLI
def test_optuna_search_maximises_best_validation_accuracy(tmp_path):
    sweep = tmp_path / "search"
    result = run_cli("qbn.train", "hparams_search=optuna", "hydra.sweeper.n_trials=2",
                     "hydra.sweeper.sampler.n_startup_trials=2", *tiny("dataset=digits"), f"hydra.sweep.dir={sweep}",
                     timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = [json.loads((d / "summary.json").read_text())
              for d in sorted(sweep.iterdir()) if (d / "summary.json").exists()]
    assert len(trials) == 2 and all(t["status"] == "completed" for t in trials)
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == max(t["val/acc_best"] for t in trials)   # the sweeper saw val/acc_best, not test/acc
    assert 1e-4 <= best.best_params["optimizer.lr"] <= 1e-2
    assert 1e-7 <= best.best_params["optimizer.weight_decay"] <= 1e-3
    lrs = sorted(t["lr"] for t in trials)
    assert lrs[0] != lrs[1]   # the trials tried different learning rates

