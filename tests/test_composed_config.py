"""Typing the config groups (qbn.schema) must not change a composed config: the same keys, values
and key order as the YAML gave before the schemas existed, with no `???` or added null keys.
tests/data/composed/ holds that text for a set of commands; `python tests/test_composed_config.py`
rewrites it (only for a deliberate change of the configs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from qbn.config import CONFIG_DIR

DATA = Path(__file__).parent / "data" / "composed"

# name -> (config, overrides): the train config unless the name starts with study
CASES = {
    "defaults": [],
    "debug_smoke": ["debug=smoke"],
    "cifar10_sgd_step": ["dataset=cifar10", "optimizer=sgd", "scheduler=step"],
    "adamw_constant": ["optimizer=adamw", "scheduler=constant"],
    "binary_fp": ["binary=fp"],
    "binary_fp_scaling_none": ["binary=fp", "scaling=none"],
    "qbn_bits_4": ["qbn.bits=4"],
    "qbn_budget_learned": ["qbn.budget=1.5", "qbn.method=learned", "qbn.from_ckpt=x", "qbn.distill.weight=0.5"],
    "rewind_trunk": ["rewind=trunk"],
    "rewind_rewound": ["rewind=rewound", "rewind.trunk=x"],
    "rewind_freeze": ["rewind=freeze"],
    "experiment_quickstart": ["experiment=quickstart"],
    "experiment_primary_subnet_trunk": ["experiment=primary_subnet", "rewind=trunk"],
    "experiment_primary_subnet_rewound": ["experiment=primary_subnet", "rewind=rewound"],
    "experiment_sign_stability": ["experiment=sign_stability"],
    "experiment_qbn_sweep": ["experiment=qbn_sweep", "qbn.from_ckpt=x"],
    "hparams_search_optuna": ["hparams_search=optuna"],
    "trainer_ddp": ["trainer=ddp"],
    "trainer_cpu": ["trainer=cpu"],
    "trainer_gpu": ["trainer=gpu"],
    "logger_wandb_callbacks_none": ["logger=wandb", "callbacks=none"],
    "user_values": ["seed=3", "optimizer.lr=0.5", "dataset.val_size=100", "trainer.max_epochs=2",
                    "+trainer.benchmark=true", "dataset.test_subset=50"],
    **{f"model_{m}": [f"model={m}"] for m in ("resnet18", "resnet20", "resnet32", "resnet34", "resnet56", "vgg_small")},
    **{f"scaling_{s}": [f"scaling={s}"] for s in ("none", "xnor", "learnable", "lq")},
    **{f"dataset_{d}": [f"dataset={d}"] for d in ("cifar10", "cifar100", "digits", "fashion_mnist", "image_folder",
                                                  "imagenet", "mnist", "synthetic")},
    "study_smoke": ["scale=smoke"],
    "study_cpu": ["scale=cpu"],
    "study_cpu_long": ["scale=cpu_long"],
    "study_full": ["scale=full", "jobs=3", "dataset.train_subset=10"],
}


def composed_text(name: str) -> str:
    from qbn.schema import compose_config  # the composition every entry point uses

    if name.startswith("study"):
        from qbn.study.__main__ import split_overrides

        cfg = compose_config(CONFIG_DIR / "study", "study", split_overrides(CASES[name]))
    else:
        cfg = compose_config(CONFIG_DIR, "train", CASES[name])
    return OmegaConf.to_yaml(cfg)


@pytest.mark.parametrize("name", sorted(CASES))
def test_typing_the_groups_changes_no_composed_config(name):
    assert composed_text(name) == (DATA / f"{name}.yaml").read_text()


if __name__ == "__main__":
    DATA.mkdir(parents=True, exist_ok=True)
    for case in CASES if len(sys.argv) < 2 else sys.argv[1:]:
        (DATA / f"{case}.yaml").write_text(composed_text(case))
