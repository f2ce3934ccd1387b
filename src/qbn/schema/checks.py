"""The checks of a composed config, before anything starts: every schema'd node's ranges, choices
and keys (qbn.schema.fields), rewind.* against its schema, then the options that fight each other."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..config import CONFIG_DIR
from ..errors import ConfigError
from .fields import check_fields
from .rewind import RewindSchema


def check_section(cfg: DictConfig, section: str, schema: type) -> None:
    """A section Hydra leaves untyped, merged onto its schema (types, unknown keys) and walked."""
    if section not in cfg:
        return
    try:
        typed = OmegaConf.merge(OmegaConf.structured(schema), cfg[section])
    except OmegaConfBaseException as e:
        where = getattr(e, "full_key", None) or getattr(e, "key", None)
        key = ".".join(k for k in (section, str(where or "")) if k) or section
        value = OmegaConf.select(cfg, key.split("[", 1)[0], default=None, throw_on_missing=False)
        reason = str(getattr(e, "msg", None) or e).splitlines()[0]
        raise ConfigError(f"{key}={value!r}: {reason}") from None
    check_fields(typed, f"{section}.")


def check_config(cfg: DictConfig) -> None:
    """Every typed check of a composed train config: one ConfigError naming the first bad option."""
    check_fields(cfg)
    check_section(cfg, "rewind", RewindSchema)
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


