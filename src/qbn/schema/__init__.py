"""The typed schema of qbn's options: one dataclass per option-carrying config group, registered in
Hydra's ConfigStore (store.py) and extended by the group's YAML, so Hydra types every value as it
composes; ranges and choices live in the fields (fields.py: `num(ge=1)`, `one_of(...)`) and one
walker checks them. Every entry point composes with compose_config and checks with check_config,
before anything starts; a mistake is one ConfigError naming the option.

    choices.py   each set of choices once (the mathematics takes its tuples from here)
    fields.py    num / one_of and the walker (check_fields, check_values)
    run.py       the top level of conf/train.yaml (and optimized_metric's default)
    recipe.py    trainer, optimizer (adam/adamw, sgd), scheduler (constant, cosine, step)
    data.py      dataset (by the layout of its YAML files)
    network.py   model, binary, scaling
    qbn.py       qbn (with distill)
    rewind.py    rewind.* (checked on the composed config: its keys differ per file)
    study.py     the study's own options
    store.py     the ConfigStore entries (and which groups have no schema: instantiation only)
    compose.py   compose_config / compose_train, strict bools, one-line composition errors, sweep jobs
    checks.py    check_config: fields, rewind, the options that fight each other
"""

from __future__ import annotations

from .checks import check_combinations, check_config, check_instruments, check_section, default_choice
from .compose import BOOL_VALUES, compose_config, compose_train, sweep_jobs
from .fields import check_fields, check_values, num, one_of
from .run import DEFAULT_METRIC, optimized_metric
from .store import STORED, register

register()

__all__ = [
    "BOOL_VALUES", "DEFAULT_METRIC", "STORED", "check_combinations", "check_config", "check_fields",
    "check_instruments", "check_section", "check_values", "compose_config", "compose_train", "default_choice",
    "num", "one_of", "optimized_metric", "register", "sweep_jobs",
]
