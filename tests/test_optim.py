"""Optimizers and schedules come from conf/optimizer and conf/scheduler (`_target_`, `_partial_`):
the same seed gives the same optimizer settings, learning rates and first-step losses as the
if/elif on a name did before (tests/fixtures/golden/first_steps.json, recorded with that code)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from qbn.config import group_with_target
from qbn.module import build_module
from qbn.rewind.recipe import inherit_recipe

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "golden" / "first_steps.json").read_text())


LOSS_STEPS = 3  # steps trained (forward, backward, step); the rest of the 12 only step the schedule


def first_steps(cfg, steps: int = 12, epochs: int = 3) -> dict:
    """The optimizer's class and groups, the lr of each of `steps` steps and the loss of the first
    LOSS_STEPS on seeded random batches (configure_optimizers with a stand-in Trainer of `steps`
    steps in `epochs` epochs)."""
    torch.manual_seed(0)
    module = build_module(cfg).train()
    module._trainer = types.SimpleNamespace(estimated_stepping_batches=steps, max_epochs=epochs)
    out = module.configure_optimizers()
    if isinstance(out, torch.optim.Optimizer):
        opt, sched = out, None
    else:
        opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    g = torch.Generator().manual_seed(1)
    lrs, losses = [], []
    for i in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        if i < LOSS_STEPS:
            x, y = torch.rand(8, 1, 16, 16, generator=g), torch.randint(0, 4, (8,), generator=g)
            loss = F.cross_entropy(module(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        if sched is not None:
            sched.step()
    return {"optimizer": type(opt).__name__, "scheduler": type(sched).__name__ if sched else None,
            "groups": json.loads(json.dumps(groups)), "lrs": lrs, "losses": losses}


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_same_seed_gives_the_first_steps_recorded_before(case, cfg_factory):
    expected = RECORDED[case]
    got = first_steps(cfg_factory("dataset=synthetic", "scaling=learnable", *expected["overrides"]))
    assert got["optimizer"] == expected["optimizer"] and got["scheduler"] == expected["scheduler"]
    assert got["groups"] == expected["groups"]  # every group's lr, betas / momentum, weight decay, exactly
    assert got["lrs"] == pytest.approx(expected["lrs"], rel=1e-12, abs=1e-15)
    # float kernels differ between CPUs, and the binarized weights amplify it: an AMD EPYC (AVX512) is 3.3e-4
    # relative from the recording CPU by the last steps; a wrong optimizer or schedule is off by far more
    assert got["losses"] == pytest.approx(expected["losses"][:LOSS_STEPS], rel=2e-3)


def test_override_names_users_type_still_work(cfg_factory):
    cfg = cfg_factory("optimizer=sgd", "optimizer.lr=0.05", "scheduler=step", "scheduler.gamma=0.5")
    assert cfg.optimizer._target_ == "torch.optim.SGD" and cfg.optimizer.lr == 0.05
    assert cfg.scheduler._target_ == "qbn.schedules.step" and cfg.scheduler.gamma == 0.5


def test_a_run_saved_before_targets_gets_them_from_its_groups_yaml():
    old = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4}
    assert group_with_target(old, "optimizer") == {"_target_": "torch.optim.SGD", "_partial_": True, **old}
    assert group_with_target({"name": "constant"}, "scheduler")["_target_"] == "qbn.schedules.constant"
    radam = {"_target_": "torch.optim.RAdam", "name": "adam"}
    assert group_with_target(radam, "optimizer")["_target_"] == "torch.optim.RAdam"


def test_a_trunk_saved_before_targets_gives_its_optimizer_whole(cfg_factory):
    run = cfg_factory()  # adam, cosine: with their _target_
    old_trunk = {"optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4},
                 "scheduler": {"name": "step", "milestones": [0.5, 0.75], "gamma": 0.1, "warmup_epochs": 0}}
    inherit_recipe(run, OmegaConf.create(old_trunk), [])
    assert run.optimizer._target_ == "torch.optim.SGD" and run.optimizer.momentum == 0.9
    assert run.scheduler._target_ == "qbn.schedules.step"
