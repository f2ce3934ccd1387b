"""The typed schema of the options with a grammar: binary.*, qbn.* and rewind.*.

Types and choices only: every default lives once, in the YAML of its config group (conf/). After
Hydra composed a config, check_schema merges each of these sections onto its schema, so a value
of the wrong type or outside its choices (`binary.enabled=ture`, `qbn.codebook=global`,
`rewind.save_weights=[a]`) is one ConfigError naming the key. The grammar inside a value
(`rewind.signs=epoch:K`, qbn.bits in 1..9) is checked by the typed specs that use it
(qbn.rewind.spec, qbn.kernels.quantize.QBNSettings), also before anything trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List, Optional  # noqa: UP035  OmegaConf reads these annotations, not X | None

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError
from .speed import CHANNELS_LAST, COMPILE


class Ste(Enum):
    clipped = "clipped"
    identity = "identity"


class CodebookMode(Enum):
    per_layer = "per_layer"
    shared = "shared"


class Allocation(Enum):
    distortion = "distortion"
    coverage = "coverage"


class ProgressiveOrder(Enum):
    deepest_first = "deepest_first"
    shallowest_first = "shallowest_first"


class Method(Enum):
    topk = "topk"
    learned = "learned"


class LearnedInit(Enum):
    topk = "topk"
    random = "random"


@dataclass
class DistillSchema:
    weight: float = MISSING
    temperature: float = MISSING


@dataclass
class BinarySchema:
    enabled: bool = MISSING
    ste: Ste = MISSING
    first_conv: bool = MISSING
    classifier: bool = MISSING
    shortcuts: bool = MISSING
    grouped: bool = MISSING


@dataclass
class QBNSchema:
    bits: Optional[int] = MISSING  # noqa: UP045
    budget: Optional[float] = MISSING  # noqa: UP045
    allocation: Allocation = MISSING
    codebook: CodebookMode = MISSING
    layers: Optional[List[str]] = MISSING  # noqa: UP006, UP045
    from_ckpt: Optional[str] = MISSING  # noqa: UP045
    refresh_every: int = MISSING
    progressive: bool = MISSING
    progressive_order: ProgressiveOrder = MISSING
    progressive_every: Optional[int] = MISSING  # noqa: UP045
    fp_reference: Optional[str] = MISSING  # noqa: UP045
    method: Method = MISSING
    learned_init: LearnedInit = MISSING
    learned_lr: Optional[float] = MISSING  # noqa: UP045
    learned_reseed_every: int = MISSING
    distill: DistillSchema = field(default_factory=DistillSchema)


@dataclass
class RewindSchema:
    signs: Optional[str] = MISSING  # noqa: UP045
    weights: Optional[str] = MISSING  # noqa: UP045
    trunk: Optional[str] = MISSING  # noqa: UP045
    save_weights: List[int] = MISSING  # noqa: UP006
    save_shares: List[float] = MISSING  # noqa: UP006
    freeze_signs_at: Optional[str] = MISSING  # noqa: UP045  an epoch K or share:F (qbn.rewind.spec.parse_freeze_at)
    inherited: Optional[str] = MISSING  # noqa: UP045


SCHEMAS = {"binary": BinarySchema, "qbn": QBNSchema, "rewind": RewindSchema}
# Top-level options that take a bool or a word (OmegaConf's structured configs have no unions): their choices.
CHOICES = {"channels_last": CHANNELS_LAST, "compile": COMPILE}


def _same(a, b) -> bool:
    return a is b if isinstance(a, bool) or isinstance(b, bool) else a == b


def check_choices(cfg: DictConfig) -> None:
    """One ConfigError for a top-level option of CHOICES set to none of its choices (compile=fast)."""
    for key, choices in CHOICES.items():
        value = cfg.get(key, choices[1])
        if not any(_same(value, c) for c in choices):
            names = ", ".join(str(c).lower() if isinstance(c, bool) else c for c in choices)
            raise ConfigError(f"{key}={value!r} is not valid: choose one of {names}")


def check_schema(cfg: DictConfig) -> None:
    """One ConfigError for the first key of binary.*, qbn.* or rewind.* that the schema does not know
    or whose value has the wrong type or is not one of its choices (the top-level CHOICES are checked first)."""
    check_choices(cfg)
    for section, schema in SCHEMAS.items():
        if section not in cfg:
            continue
        try:
            OmegaConf.merge(OmegaConf.structured(schema), cfg[section])
        except OmegaConfBaseException as e:
            where = getattr(e, "full_key", None) or getattr(e, "key", None)
            key = f"{section}.{where}" if where not in (None, "") else section
            value = OmegaConf.select(cfg, key.split("[", 1)[0], default=None, throw_on_missing=False)
            reason = str(getattr(e, "msg", None) or e).splitlines()[0]
            raise ConfigError(f"{key}={value!r}: {reason}") from None
