"""The typed schema of the top-level options (seed, resume, overwrite, ...) and of the sections with
a grammar: binary.*, qbn.* and rewind.*; the options that fight each other (check_combinations).

Types and choices only: every default lives once, in the YAML of its config group (conf/). After
Hydra composed a config, check_schema merges each of these sections onto its schema, so a value
of the wrong type or outside its choices (`binary.enabled=ture`, `overwrite=yes_please`,
`qbn.codebook=global`, `rewind.save_weights=[a]`) is one ConfigError naming the key and, for a
bool, the values it takes. A bool is a bool: OmegaConf would read `yes`, `no`, `on` or `1` as one,
but the word stays in the config, where `overwrite=no` would read as true. The grammar inside a value
(`rewind.signs=epoch:K`, qbn.bits in 1..9) is checked by the typed specs that use it
(qbn.rewind.spec, qbn.kernels.quantize.QBNSettings), also before anything trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import List, Optional, get_type_hints  # noqa: UP035  OmegaConf reads these annotations, not X | None

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


class StudyLogger(Enum):
    csv = "csv"
    wandb = "wandb"


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


@dataclass
class TrainSchema:
    """The top-level options of conf/train.yaml (a config group such as model= is checked by Hydra)."""

    name: str = MISSING
    seed: int = MISSING
    resume: Optional[str] = MISSING  # noqa: UP045
    overwrite: bool = MISSING
    allow_tf32: bool = MISSING
    test_after_fit: bool = MISSING
    report: bool = MISSING
    optimized_metric: Optional[str] = MISSING  # noqa: UP045


@dataclass
class StudySchema:
    """The study's own top-level options (conf/study/study.yaml)."""

    dir: str = MISSING
    stages: List[str] = MISSING  # noqa: UP006
    only: Optional[str] = MISSING  # noqa: UP045
    jobs: int = MISSING
    train: List[str] = MISSING  # noqa: UP006
    logger: StudyLogger = MISSING
    wandb_project: str = MISSING
    launcher: str = MISSING
    report: bool = MISSING


# section -> schema; "" is the top level (only the keys its schema names: the rest are sections)
SCHEMAS = {"": TrainSchema, "binary": BinarySchema, "qbn": QBNSchema, "rewind": RewindSchema}
STUDY_SCHEMAS = {"": StudySchema}
# Top-level options that take a bool or a word (OmegaConf's structured configs have no unions): their choices.
CHOICES = {"channels_last": CHANNELS_LAST, "compile": COMPILE}


def _same(a, b) -> bool:
    return a is b if isinstance(a, bool) or isinstance(b, bool) else a == b


def check_option_words(cfg: DictConfig) -> None:
    """One ConfigError for a top-level option of CHOICES set to none of its choices (compile=fast)."""
    for key, choices in CHOICES.items():
        value = cfg.get(key, choices[1])
        if not any(_same(value, c) for c in choices):
            names = ", ".join(str(c).lower() if isinstance(c, bool) else c for c in choices)
            raise ConfigError(f"{key}={value!r} is not valid: choose one of {names}")


BOOL_VALUES = "it takes true or false"


def _section(cfg: DictConfig, section: str, schema: type) -> DictConfig:
    if section:
        return cfg[section]
    return OmegaConf.masked_copy(cfg, [f.name for f in fields(schema) if f.name in cfg])


def _check_bools(cfg: DictConfig, section: str, schema: type) -> None:
    """A bool field holds true or false (also null where Optional), not a word OmegaConf would convert."""
    node = _section(cfg, section, schema)
    for name, hint in get_type_hints(schema).items():
        if hint not in (bool, Optional[bool]) or name not in node:  # noqa: UP045
            continue
        value = OmegaConf.select(node, name, throw_on_resolution_failure=False)
        if not isinstance(value, bool) and not (value is None and hint is not bool):
            key = f"{section}.{name}" if section else name
            raise ConfigError(f"{key}={value!r}: not a valid bool; {BOOL_VALUES}")


def check_schema(cfg: DictConfig, schemas: dict[str, type] = SCHEMAS) -> None:
    """One ConfigError for the first top-level option, or key of binary.*, qbn.* or rewind.*, that the
    schema does not know or whose value has the wrong type or is not one of its choices (`schemas`:
    STUDY_SCHEMAS for the study's own config; a train config's CHOICES first, its combinations last)."""
    if schemas is SCHEMAS:
        check_option_words(cfg)
    for section, schema in schemas.items():
        if section and section not in cfg:
            continue
        _check_bools(cfg, section, schema)
        try:
            OmegaConf.merge(OmegaConf.structured(schema), _section(cfg, section, schema))
        except OmegaConfBaseException as e:
            where = getattr(e, "full_key", None) or getattr(e, "key", None)
            key = ".".join(k for k in (section, str(where or "")) if k) or section
            value = OmegaConf.select(cfg, key.split("[", 1)[0], default=None, throw_on_missing=False)
            reason = str(getattr(e, "msg", None) or e).splitlines()[0]
            raise ConfigError(f"{key}={value!r}: {reason}") from None
    if schemas is SCHEMAS:
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
        raise ConfigError("qbn.bits / qbn.budget turn QBN on, but callbacks.codebook is off: "
                          "drop callbacks.codebook=null")
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


# Options a user types on the command line, checked before a run touches anything (a string
# where a number belongs, or max_epochs=-1, which Lightning reads as "train forever").
# key: (kind, lowest, highest, null allowed); kind "int" or "number"; bounds inclusive, None = open.
_RULES = {
    "seed": ("int", 0, None, False),
    "trainer.max_epochs": ("int", 1, None, False),
    "trainer.log_every_n_steps": ("int", 1, None, False),
    "optimizer.lr": ("number", 1e-12, None, False),
    "optimizer.momentum": ("number", 0, 1, False),
    "optimizer.weight_decay": ("number", 0, None, False),
    "optimizer.weight_decay_binary": ("number", 0, None, True),
    "optimizer.weight_decay_scale": ("number", 0, None, True),
    "optimizer.weight_decay_bn": ("number", 0, None, True),
    "optimizer.weight_decay_fp": ("number", 0, None, True),
    "scheduler.warmup_epochs": ("number", 0, None, False),
    "scheduler.min_lr_ratio": ("number", 0, 1, False),
    "scheduler.gamma": ("number", 1e-12, None, False),
    "dataset.batch_size": ("int", 1, None, False),
    "dataset.eval_batch_size": ("int", 1, None, False),
    "dataset.num_workers": ("int", 0, None, True),
    "dataset.image_size": ("int", 1, None, False),
    "dataset.resize": ("int", 1, None, True),
    "dataset.num_classes": ("int", 1, None, True),
    "dataset.val_size": ("number", 0, None, False),
    "dataset.train_subset": ("int", 1, None, True),
    "dataset.test_subset": ("int", 1, None, True),
    "qbn.bits": ("int", 1, 9, True),
    "qbn.budget": ("number", 1e-12, 9, True),
    "qbn.learned_lr": ("number", 1e-12, None, True),
    "qbn.learned_reseed_every": ("int", 0, None, False),
    "qbn.distill.weight": ("number", 0, 1, False),
    "qbn.distill.temperature": ("number", 1e-12, None, False),
}


def _rule_text(kind: str, low, high, nullable: bool) -> str:
    what = "a whole number" if kind == "int" else "a number"
    if low is not None and high is not None:
        what += f" from {low} to {high}"
    elif low is not None:
        what += " above 0" if 0 < low < 1e-6 else f" of at least {low}"
    return what + (" (or null)" if nullable else "")


def check_values(cfg: DictConfig) -> None:
    """Refuse an option of the wrong type or range, naming it (a ConfigError, one line)."""
    for key, (kind, low, high, nullable) in _RULES.items():
        value = OmegaConf.select(cfg, key, default="<absent>", throw_on_missing=False)
        if value == "<absent>" or (value is None and nullable):
            continue
        ok = isinstance(value, int if kind == "int" else (int, float)) and not isinstance(value, bool)
        ok = ok and (low is None or value >= low) and (high is None or value <= high)
        if not ok:
            raise ConfigError(f"{key}={value!r} is not valid: it must be {_rule_text(kind, low, high, nullable)}")


def check_config(cfg: DictConfig) -> None:
    """Every typed check of a composed train config, before anything starts: values and ranges
    (check_values), then types and choices (check_schema). One ConfigError naming the first bad key."""
    check_values(cfg)
    check_schema(cfg)
