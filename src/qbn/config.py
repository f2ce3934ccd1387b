"""Config helpers shared by every entry point: resolvers and the packaged config directory."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).parent / "conf"


def _first_set(value, default):
    return default if value in (None, "", "null") else value


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("qbn.run_dir"):
        OmegaConf.register_new_resolver("qbn.run_dir", _first_set)


def to_plain(cfg: DictConfig | dict | None) -> dict:
    """A resolved plain dict (for hparams, JSON and W&B)."""
    if cfg is None:
        return {}
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


register_resolvers()
