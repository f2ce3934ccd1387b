"""The schemas and the YAML say each option once: every key of a schema'd YAML file is a field of
its schema, in the same order, and every field is a key ("adding an option is one field and one
YAML line"); the ranges in the fields are the ranges the options had (checked against a direct
computation); choices are defined once."""

from __future__ import annotations

import dataclasses
import math

import pytest
from omegaconf import OmegaConf

from qbn.binary import STE_MODES
from qbn.config import CONFIG_DIR
from qbn.errors import ConfigError
from qbn.kernels.quantize import QBNSettings
from qbn.schema import STORED, check_values, choices
from qbn.schema.data import DigitsSchema, ImageFolderSchema, InMemorySchema
from qbn.schema.qbn import QBNSchema
from qbn.schema.recipe import AdamSchema, CosineSchema, SGDSchema, StepSchema, TrainerSchema
from qbn.schema.run import TrainSchema
from qbn.testing.runs import compose_cfg

SCHEMA_PREFIX = "/schema/"


def _schema_files() -> dict[str, tuple[type, list[str], list[str]]]:
    """path -> (its schema, its own keys in order, the other defaults entries) for each YAML that names a schema."""
    out = {}
    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        data = OmegaConf.load(path)
        defaults = list(data.get("defaults") or [])
        named = [d for d in defaults if isinstance(d, str) and d.startswith(SCHEMA_PREFIX)]
        if named:
            stored = named[0][len(SCHEMA_PREFIX):].split("@", 1)[0]
            keys = [k for k in data if k not in ("defaults", "hydra")]
            others = [d for d in defaults if d not in (named[0], "_self_")]
            out[str(path.relative_to(CONFIG_DIR))] = (STORED[stored], keys, others)
    return out


def test_every_yaml_key_is_a_field_of_its_schema_in_order_and_every_field_a_key():
    files = _schema_files()
    assert len(files) >= 30
    for path, (schema, keys, others) in files.items():
        names = [f.name for f in dataclasses.fields(schema)]
        groups = {next(iter(d)) for d in others if not isinstance(d, str)}   # config groups composed below
        inherited = [d for d in others if isinstance(d, str)]                 # trainer/ddp builds on default
        if inherited:
            base = {f.name for f in dataclasses.fields(schema.__mro__[1])}   # the schema it extends
            own = [n for n in names if n not in base]
            assert keys[-len(own):] == own and set(keys) <= set(names), path
        else:
            assert keys == [n for n in names if n not in groups], path
    named = {schema for schema, _, _ in files.values()}
    assert set(STORED.values()) <= named   # no schema without a file that uses it


def test_files_that_build_on_another_set_only_its_fields():
    for name in ("cpu", "gpu"):
        data = OmegaConf.load(CONFIG_DIR / "trainer" / f"{name}.yaml")
        assert set(data) - {"defaults"} <= {f.name for f in dataclasses.fields(TrainerSchema)}


def test_each_set_of_choices_is_defined_once():
    assert STE_MODES is choices.STE_MODES
    meta = {f.name: f.metadata for f in dataclasses.fields(QBNSchema)}
    assert meta["codebook"]["choices"] is choices.CODEBOOK_MODES
    assert meta["method"]["choices"] is choices.METHODS
    assert meta["learned_init"]["choices"] is choices.LEARNED_INITS
    assert meta["allocation"]["choices"] is choices.ALLOCATIONS
    assert meta["progressive_order"]["choices"] is choices.PROGRESSIVE_ORDERS
    assert QBNSchema in QBNSettings.__mro__   # QBN's settings are the schema's fields, no defaults of their own
    assert all(f.default in (dataclasses.MISSING, "???") for f in dataclasses.fields(QBNSettings))


# The ranges as qbn checked them before the schema held them (a table beside the schema, whose lowest
# bound 1e-12 meant above 0): (whole number, lowest, highest, null allowed); bounds inclusive but ABOVE_0.
ABOVE_0 = "above 0"
RULES = {
    (TrainSchema, "seed"): (True, 0, None, False),
    (TrainerSchema, "max_epochs"): (True, 1, None, False),
    (TrainerSchema, "log_every_n_steps"): (True, 1, None, False),
    (AdamSchema, "lr"): (False, ABOVE_0, None, False),
    (SGDSchema, "momentum"): (False, 0, 1, False),
    (AdamSchema, "weight_decay"): (False, 0, None, False),
    (AdamSchema, "weight_decay_binary"): (False, 0, None, True),
    (SGDSchema, "weight_decay_scale"): (False, 0, None, True),
    (AdamSchema, "weight_decay_bn"): (False, 0, None, True),
    (SGDSchema, "weight_decay_fp"): (False, 0, None, True),
    (CosineSchema, "warmup_epochs"): (False, 0, None, False),
    (CosineSchema, "min_lr_ratio"): (False, 0, 1, False),
    (StepSchema, "gamma"): (False, ABOVE_0, None, False),
    (InMemorySchema, "batch_size"): (True, 1, None, False),
    (DigitsSchema, "eval_batch_size"): (True, 1, None, False),
    (ImageFolderSchema, "num_workers"): (True, 0, None, True),
    (InMemorySchema, "image_size"): (True, 1, None, False),
    (ImageFolderSchema, "resize"): (True, 1, None, True),
    (ImageFolderSchema, "num_classes"): (True, 1, None, True),
    (DigitsSchema, "val_size"): (False, 0, None, False),
    (InMemorySchema, "train_subset"): (True, 1, None, True),
    (ImageFolderSchema, "test_subset"): (True, 1, None, True),
    (QBNSchema, "bits"): (True, 1, 9, True),
    (QBNSchema, "budget"): (False, ABOVE_0, 9, True),
    (QBNSchema, "learned_lr"): (False, ABOVE_0, None, True),
    (QBNSchema, "learned_reseed_every"): (True, 0, None, False),
}
VALUES = [None, True, "abc", -1, 0, 1e-13, 1e-6, 0.5, 1, 1.5, 2, 9, 9.5, 10, 1000, -0.5, math.inf]


def _allowed(rule, value) -> bool:
    whole, low, high, null = rule
    if value is None:
        return null
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        return False
    above = value > 0 if low == ABOVE_0 else low is None or value >= low
    return above and (high is None or value <= high)


@pytest.mark.parametrize("schema, name", sorted(RULES, key=lambda k: (k[0].__name__, k[1])))
def test_the_walker_keeps_the_ranges_the_options_had(schema, name):
    for value in VALUES:
        try:
            check_values(schema, {name: value})
            taken = True
        except ConfigError as e:
            taken = False
            assert str(e).startswith(f"{name}={value!r} is not valid: it must be a ") and "\n" not in str(e)
        assert taken == _allowed(RULES[schema, name], value), (schema.__name__, name, value)


def test_the_walker_finds_the_first_bad_value_of_a_composed_config(cfg_factory):
    cfg = cfg_factory("dataset=digits", "qbn.bits=4", "qbn.distill.temperature=2.0")
    with pytest.raises(ConfigError, match=r"^qbn.distill.weight=1.5 is not valid: it must be a number from 0 to 1$"):
        check_values(QBNSchema, {**OmegaConf.to_container(cfg.qbn), "distill": {"weight": 1.5, "temperature": 2}},
                     "qbn.")
    with pytest.raises(ConfigError, match=r"^qbn.codebook='global' is not valid: choose one of per_layer, shared$"):
        check_values(QBNSchema, {"bits": 4, "codebook": "global"}, "qbn.")
    check_values(QBNSchema, cfg.qbn, "qbn.")   # a composed section passes as it is


def test_values_are_typed_at_composition(tmp_path):
    cfg = compose_cfg(tmp_path / "run", ["seed=3", "qbn.bits=4", "dataset.val_size=0.25"])
    assert OmegaConf.get_type(cfg.qbn) is QBNSchema and OmegaConf.get_type(cfg.trainer) is TrainerSchema
    assert cfg.seed == 3 and cfg.qbn.bits == 4 and cfg.dataset.val_size == 0.25
    assert isinstance(compose_cfg(tmp_path / "run", []).dataset.val_size, int)   # 5000 images stays an int
