"""Config helpers shared by every entry point: resolvers and the packaged config directory."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError

# An installed wheel carries the configs inside the package (qbn/conf); a checkout, or an editable
# install of one, keeps them at the top of the repository (conf/), where setup.py takes them from.
_IN_PACKAGE = Path(__file__).parent / "conf"
CONFIG_DIR = _IN_PACKAGE if _IN_PACKAGE.is_dir() else Path(__file__).parents[2] / "conf"


def _first_set(value, default):
    return default if value in (None, "", "null") else value


def _on_gpu(accelerator) -> bool:
    """Whether Lightning's `accelerator` runs on GPUs (SyncBatchNorm, for one, only works there)."""
    if str(accelerator) == "auto":
        import torch

        return torch.cuda.is_available()
    return str(accelerator) in ("gpu", "cuda")


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("qbn.run_dir"):
        OmegaConf.register_new_resolver("qbn.run_dir", _first_set)
    if not OmegaConf.has_resolver("qbn.on_gpu"):
        OmegaConf.register_new_resolver("qbn.on_gpu", _on_gpu)


def to_plain(cfg: DictConfig | dict | None) -> dict:
    """A resolved plain dict (for hparams, JSON and W&B)."""
    if cfg is None:
        return {}
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def group_with_target(section: DictConfig | dict, group: str) -> dict:
    """A config group's section as a plain dict with its `_target_`: a run saved before optimizers and
    schedulers were instantiated from config has only `name`; its group's YAML gives the rest."""
    plain = to_plain(section)
    if "_target_" not in plain and (CONFIG_DIR / group / f"{plain.get('name')}.yaml").is_file():
        own = OmegaConf.load(CONFIG_DIR / group / f"{plain['name']}.yaml")
        plain = {"_target_": own["_target_"], "_partial_": own.get("_partial_", False), **plain}
    return plain


def flatten(value, prefix: str = "") -> dict:
    """{'a.b.c': leaf} of a nested dict or DictConfig (an empty dict is a leaf)."""
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=False)
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def check_choices(argv: list[str], config_dir: Path) -> None:
    """A config group option (`model=resnet99`, `scale=huge`, each value of a sweep `model=a,b`) that
    names no file of its group is one ConfigError listing the choices (Hydra's own message is a
    multi-line list). Read from the command line before Hydra composes; anything else is left to it."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        group = Path(config_dir, *key.lstrip("+~").replace("/", ".").split("."))
        if not sep or arg.startswith("-") or "@" in key or not group.is_dir() or any(c in value for c in "[]{}()$*"):
            continue
        choices = sorted(p.stem for p in group.glob("*.yaml"))
        for v in (x.strip().strip("'\"") for x in value.split(",")):
            if v and v != "null" and v not in choices:
                raise ConfigError(f"{arg}: there is no {key.lstrip('+~')} named {v!r}; "
                                  f"choose one of {', '.join(choices)}")


register_resolvers()
