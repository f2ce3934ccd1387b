"""What a rewound run takes from its trunk: the training recipe (unless this run's command line
sets it), and the model, which must be the trunk's."""

from __future__ import annotations

import copy
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from ..config import flatten, group_with_target
from ..rundir import RunDir
from .spec import RewindError
from .trunk import check_outside_trunk, find_trunk

# what a rewound run takes from its trunk unless this run's command line sets it
RECIPE_KEYS = ("trainer.max_epochs", "trainer.limit_train_batches", "optimizer", "scheduler",
               "dataset.batch_size", "dataset.augment", "dataset.train_subset", "dataset.test_subset",
               "dataset.val_size", "dataset.split_seed")
# what must be the same as the trunk's (else the trunk is "of another model")
MODEL_KEYS = ("model", "scaling.name", "binary", "dataset.name", "dataset.num_classes",
              "dataset.in_channels", "dataset.image_size")


_ABSENT = object()


def _select(cfg, key: str):
    return OmegaConf.select(cfg, key, default=None, throw_on_missing=False)


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def override_keys(task_overrides) -> list[str]:
    """Keys set on the command line (`a.b=1`, `+a=2`, `group=opt`), without the value."""
    return [str(o).split("=", 1)[0].lstrip("+~") for o in task_overrides or []]


def _overridden(leaf: str, overrides: list[str]) -> bool:
    """Whether the command line sets `leaf`: itself, something under it, or a recipe key above it
    (`optimizer=sgd` keeps this run's optimizer; `trainer=gpu` or `dataset=x` keep no recipe leaf)."""
    return any(leaf == o or o.startswith(leaf + ".") or (leaf.startswith(o + ".") and o in RECIPE_KEYS)
               for o in overrides)


def inherit_recipe(cfg: DictConfig, trunk_cfg: DictConfig, overrides: list[str]) -> dict:
    """Set this run's RECIPE_KEYS to the trunk's, leaf by leaf, except those on the command line.
    Returns {key: value} of what changed."""
    changed = {}
    for key in RECIPE_KEYS:
        if OmegaConf.select(trunk_cfg, key, default=_ABSENT, throw_on_missing=False) is _ABSENT:
            continue   # a trunk saved without the key keeps this run's value (a typed option takes no null)
        theirs = _plain(_select(trunk_cfg, key))
        if key in ("optimizer", "scheduler") and isinstance(theirs, dict) and _select(cfg, f"{key}._target_"):
            theirs = group_with_target(theirs, key)  # a trunk saved before these groups had a `_target_`
        if theirs is None and _select(cfg, key) is None:
            continue
        for leaf, value in flatten(theirs, key).items():
            if _overridden(leaf, overrides) or _plain(_select(cfg, leaf)) == value:
                continue
            with open_dict(cfg):
                OmegaConf.update(cfg, leaf, value, merge=value != {}, force_add=True)
            changed[leaf] = value
    return changed


def check_same_model(cfg: DictConfig, trunk_cfg: DictConfig, trunk_dir: Path) -> None:
    """One clear message when the trunk trained another model (backbone, scaling, policy, data)."""
    for key in MODEL_KEYS:
        ours, theirs = _plain(_select(cfg, key)), _plain(_select(trunk_cfg, key))
        if ours != theirs:
            raise RewindError(f"trunk {trunk_dir} is of another model: its {key} is {theirs!r}, "
                              f"this run's is {ours!r}. Rewind with the trunk's settings "
                              f"(e.g. {_suggest(key, theirs)}) or choose another trunk.")


def _suggest(key: str, value) -> str:
    """The override that gives this run the trunk's value (a group choice where there is one)."""
    if isinstance(value, dict) and "name" in value:
        return f"{key}={value['name']}"
    if key.endswith(".name") and key.count(".") == 1:
        return f"{key[:-5]}={value}"
    return f"{key}=..." if isinstance(value, dict) else f"{key}={value}"


def rewound_config(cfg: DictConfig, run_dir: str | Path, overrides: list[str]) -> DictConfig:
    """The config a rewound run trains with, made before anything is built: `cfg` with the trunk's
    recipe (RECIPE_KEYS, except what `overrides` set), `rewind.trunk` pinned to the trunk's run
    directory and `rewind.inherited` listing what was taken. The trunk must have trained the same
    model. `cfg` itself is left as composed; with rewinding off it is returned as it is."""
    if not cfg.rewind.signs:
        return cfg
    trunk = OmegaConf.select(cfg, "rewind.trunk", throw_on_missing=False)
    trunk_dir = find_trunk(trunk, cfg.paths.output_dir).resolve()
    check_outside_trunk(run_dir, trunk_dir)
    trunk_cfg = RunDir(trunk_dir).saved_config()
    if trunk_cfg is None:
        raise RewindError(f"trunk {trunk_dir} lacks .hydra/config.yaml: is it a qbn run directory?")
    check_same_model(cfg, trunk_cfg, trunk_dir)
    rewound = copy.deepcopy(cfg)
    inherited = inherit_recipe(rewound, trunk_cfg, overrides)
    with open_dict(rewound):
        rewound.rewind.trunk = str(trunk_dir)
        rewound.rewind.inherited = " ".join(f"{k}={v}" for k, v in inherited.items())
    return rewound
