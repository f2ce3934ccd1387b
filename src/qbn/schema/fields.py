"""A schema field says its range or choices (`num(ge=1)`, `one_of(STE_MODES)`); one walker,
check_fields, checks every such field of a typed config (or of a dataclass's values) and names the
first bad one in one line. OmegaConf checks the type at composition (`seed=abc`); the walker checks
what a type cannot say (`trainer.max_epochs=0`, `qbn.bits=12`, `qbn.codebook=global`) and the
numbers a field takes as int or float alike (`dataset.val_size`: 5000 images or a share 0.1)."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from ..errors import ConfigError


def num(default: Any = MISSING, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
        null: bool = False) -> Any:
    """A number field with its range (inclusive ge/le, exclusive gt; null: None is allowed). An int
    annotation makes it a whole number; float or Any, any number (Any keeps 5000 an int and 0.1 a float)."""
    return dataclasses.field(default=default, metadata={"ge": ge, "gt": gt, "le": le, "null": null})


def one_of(choices: tuple, default: Any = MISSING, *, null: bool = False) -> Any:
    """A field that takes one of `choices` (a bool choice is the bool itself, never the word)."""
    return dataclasses.field(default=default, metadata={"choices": tuple(choices), "null": null})


def _whole(hint) -> bool:
    return hint is int or (typing.get_origin(hint) is typing.Union and int in typing.get_args(hint))


def _number_text(whole: bool, ge, gt, le, null: bool) -> str:
    what = "a whole number" if whole else "a number"
    if ge is not None and le is not None:
        what += f" from {ge} to {le}"
    elif gt is not None:
        what += f" above {gt}" + (f" and at most {le}" if le is not None else "")
    elif ge is not None:
        what += f" of at least {ge}"
    elif le is not None:
        what += f" of at most {le}"
    return what + (" (or null)" if null else "")


def _same(a, b) -> bool:
    return a is b if isinstance(a, bool) or isinstance(b, bool) else a == b


def field_error(key: str, value, hint, meta: Mapping) -> str | None:
    """Why `value` does not fit a field with this annotation and metadata (None: it fits)."""
    if value is None and meta.get("null"):
        return None
    if "choices" in meta:
        if any(_same(value, c) for c in meta["choices"]):
            return None
        names = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in meta["choices"])
        return f"{key}={value!r} is not valid: choose one of {names}"
    whole = _whole(hint)
    ok = isinstance(value, int if whole else (int, float)) and not isinstance(value, bool)
    ge, gt, le = meta.get("ge"), meta.get("gt"), meta.get("le")
    ok = ok and (ge is None or value >= ge) and (gt is None or value > gt) and (le is None or value <= le)
    return None if ok else f"{key}={value!r} is not valid: it must be {_number_text(whole, ge, gt, le, meta['null'])}"


def _checked(schema: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(schema)
    return [(f, hints[f.name]) for f in dataclasses.fields(schema)]


def check_values(schema: type, values: Mapping | DictConfig, prefix: str = "") -> None:
    """One ConfigError for the first field of `schema` (and of its nested schemas) whose value in
    `values` is out of its range or choices. Absent keys, `???` and values that do not resolve here
    (${hydra:...} outside a Hydra app) are left to the code that reads them."""
    for f, hint in _checked(schema):
        key = f"{prefix}{f.name}"
        if f.name not in values:
            continue
        if isinstance(values, DictConfig):
            if OmegaConf.is_missing(values, f.name):
                continue
            value = OmegaConf.select(values, f.name, throw_on_resolution_failure=False, throw_on_missing=False)
        else:
            value = values[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):   # a plain dict (check_fields walks a config)
            check_values(hint, value, f"{key}.")
        elif f.metadata and (error := field_error(key, value, hint, f.metadata)):
            raise ConfigError(error)


def check_fields(cfg: DictConfig, prefix: str = "") -> None:
    """Walk a composed config: every node that Hydra typed with a schema (OmegaConf.get_type) has
    its fields' ranges and choices checked (check_values), in the order of the config."""
    kind = OmegaConf.get_type(cfg)
    if dataclasses.is_dataclass(kind):
        check_values(kind, cfg, prefix)
        if not getattr(kind, "EXTRA_KEYS", False):
            names = {f.name for f in dataclasses.fields(kind)}
            for key in cfg:
                if key not in names and not (key == "hydra" and not prefix):
                    value = OmegaConf.select(cfg, str(key), throw_on_resolution_failure=False)
                    raise ConfigError(f"{prefix}{key}={value!r}: Key '{key}' not in '{kind.__name__}'")
    for key in cfg:
        node = cfg._get_node(key)
        if key == "hydra" and not prefix:   # Hydra's own node (tests compose with it): Hydra's to type
            continue
        if isinstance(node, DictConfig) and not (node._is_missing() or node._is_none() or node._is_interpolation()):
            check_fields(node, f"{prefix}{key}.")
