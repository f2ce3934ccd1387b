"""Composing a config the way every entry point does: the schemas registered, the overrides
composed by Hydra (which types the values of every schema'd group), and any mistake one ConfigError
naming the option (`key=value: reason`; Hydra's own messages span several lines). A bool field
takes true or false as typed: OmegaConf would turn `no`, `on` or `1` into a bool, leaving no trace
of the word, so the overrides' own text is checked."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.singleton import Singleton
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..config import CONFIG_DIR, check_choices
from ..errors import ConfigError
from .store import register

BOOL_VALUES = "it takes true or false"


def _parse(overrides: list[str]) -> list[Override]:
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"bad override in {' '.join(overrides)}: {_one_line(e)}") from None


def _one_line(e: BaseException) -> str:
    """Hydra's first line (and its advice, for a key the config does not have)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
    return " ".join(lines[:2] if lines[0].startswith("Could not override") else lines[:1])[:300]


def _value_text(o: Override):
    return o.value() if not o.is_sweep_override() else o.get_value_element_as_str()


def _field_hint(cfg: DictConfig, key: str):
    """The annotation of the schema field `key` of a composed config (None: not a schema's field)."""
    parent, _, name = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, throw_on_missing=False) if parent else cfg
    kind = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
    if not dataclasses.is_dataclass(kind):
        return None
    return typing.get_type_hints(kind).get(name)


def _is_bool(hint) -> bool:
    return hint is bool or hint == typing.Optional[bool]  # noqa: UP045


def check_bool_words(cfg: DictConfig, parsed: list[Override]) -> None:
    """A bool field set on the command line to anything but true or false (null where Optional)."""
    for o in parsed:
        if o.is_delete() or o.is_sweep_override():
            continue
        hint = _field_hint(cfg, o.key_or_group)
        value = o.value()
        if _is_bool(hint) and not isinstance(value, bool) and not (value is None and hint is not bool):
            raise ConfigError(f"{o.key_or_group}={value!r}: not a valid bool; {BOOL_VALUES}")


def _cause(e: BaseException) -> OmegaConfBaseException | None:
    while e is not None and not isinstance(e, OmegaConfBaseException):
        e = e.__cause__ or e.__context__
    return e


def composition_error(e: BaseException, parsed: list[Override]) -> ConfigError:
    """Hydra's error as one line naming the option: `seed='abc': Value 'abc' of type 'str' could not
    be converted to Integer`, `binary.enabled='ture': not a valid bool; ...`."""
    cause = _cause(e.__cause__ or e.__context__) if not isinstance(e, OmegaConfBaseException) else e
    key = getattr(cause, "full_key", None) if cause is not None else None
    given = {o.key_or_group: o for o in parsed}
    if key and key in given and "Could not override" not in str(e):
        value = _value_text(given[key])
        kind = getattr(cause, "object_type", None)
        hint = typing.get_type_hints(kind).get(key.rsplit(".", 1)[-1]) if dataclasses.is_dataclass(kind) else None
        reason = str(getattr(cause, "msg", None) or cause).splitlines()[0]
        if _is_bool(hint) or "is not a valid bool" in reason:
            return ConfigError(f"{key}={value!r}: not a valid bool; {BOOL_VALUES}")
        return ConfigError(f"{key}={value!r}: {reason}")
    line = _one_line(e)
    named = [o.input_line for o in parsed if f"'{o.key_or_group}'" in line or f" {o.input_line}" in line]
    return ConfigError(f"{named[0]}: {line}" if named else line)


def compose_config(config_dir: Path, name: str, overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    """Config `name` of `config_dir` composed with `overrides` and typed by the schemas (a mistake
    is one ConfigError), also from inside another Hydra app (qbn.study): its global state is set
    aside and put back."""
    register()
    check_choices(list(overrides), config_dir)   # model=resnet99: the real choices, in one line
    parsed = _parse(overrides)
    saved = Singleton._instances.pop(GlobalHydra, None)
    try:
        with initialize_config_dir(str(config_dir), version_base="1.3"):
            cfg = compose(name, overrides=list(overrides), return_hydra_config=return_hydra_config)
    except (HydraException, OmegaConfBaseException) as e:
        raise composition_error(e, parsed) from None
    finally:
        Singleton._instances.pop(GlobalHydra, None)
        if saved is not None:
            Singleton._instances[GlobalHydra] = saved
    check_bool_words(cfg, parsed)
    return cfg


def compose_train(overrides: list[str]) -> DictConfig:
    """The composed config of `python -m qbn.train OVERRIDES` (a mistake is one ConfigError)."""
    return compose_config(CONFIG_DIR, "train", overrides)


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The overrides of each job of a sweep (`seed=0,abc` -> [seed=0], [seed=abc]), as Hydra's basic
    sweeper splits them; a sweep over ranges or intervals (Optuna's) is left to its sweeper: its
    other overrides form the one job checked."""
    parsed = _parse(overrides)
    jobs: list[list[str]] = [[]]
    for o in parsed:
        if o.is_sweep_override() and not o.is_discrete_sweep():
            continue
        key = o.get_key_element()
        if o.is_delete() and o.value() is None:
            jobs = [[*job, key] for job in jobs]
            continue
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        jobs = [[*job, f"{key}={v}"] for job in jobs for v in values]
    return jobs
