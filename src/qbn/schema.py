"""The typed schema of the options with a grammar: binary.*, qbn.* and rewind.*, and the options
that fight each other (check_combinations).

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

from .config import CONFIG_DIR
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
    check_combinations(cfg)


def default_choice(group: str) -> str | None:
    """The option conf/train.yaml's defaults list chooses for `group`."""
    for entry in OmegaConf.load(CONFIG_DIR / "train.yaml").defaults:
        if isinstance(entry, DictConfig) and group in entry:
            return entry[group]
    return None


def check_combinations(cfg: DictConfig) -> None:
    """Options that fight each other are one ConfigError before anything starts: a scaling chosen
    for full-precision weights (binary=fp scales nothing), an option whose instrument is off."""
    if "binary" in cfg and "scaling" in cfg and not cfg.binary.enabled:
        name = cfg.scaling.name
        if name not in ("none", default_choice("scaling")):
            raise ConfigError(f"scaling={name} has no effect with binary=fp (binary.enabled=false): full-precision "
                              f"weights are not scaled; drop scaling={name}, or binarize (binary=default)")
    if all(k in cfg for k in ("callbacks", "qbn", "rewind")):
        check_instruments(cfg)


def check_instruments(cfg: DictConfig) -> None:
    """The instruments an option depends on are in cfg.callbacks (QBN: codebook; a rewound run:
    apply_rewind; a trunk: sign snapshots at every epoch end)."""
    on = cfg.callbacks
    if (cfg.qbn.bits is not None or cfg.qbn.budget is not None) and not on.get("codebook"):
        raise ConfigError("qbn.bits / qbn.budget turn QBN on, but callbacks.codebook is off: drop callbacks.codebook=null")
    if OmegaConf.select(cfg, "qbn.distill.weight", default=0) and not on.get("distill"):
        raise ConfigError("qbn.distill.weight > 0 distils from a teacher, but callbacks.distill is off: "
                          "drop callbacks.distill=null")
    if cfg.rewind.signs and not on.get("apply_rewind"):
        raise ConfigError("rewind.signs is set but callbacks.apply_rewind is off: choose rewind=rewound "
                          "(it adds the callback), or drop callbacks.apply_rewind=null")
    snapshots = on.get("sign_snapshots")
    if on.get("rewind_points") and not (snapshots and snapshots.every_n_epochs == 1):
        raise ConfigError("rewind=trunk needs a sign snapshot at every epoch end: keep callbacks.sign_snapshots on "
                          "(callbacks=default) with every_n_epochs=1")
