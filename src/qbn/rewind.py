"""Rewinding with fixed signs (STUDY.md, primary sub-networks): a rewound run takes a trunk run
directory, fixes every binarized weight's sign to the trunk's `S_k` (or a control), and trains
again from a rewind point.

Options (conf/rewind/rewound.yaml):
- `signs`: `epoch:K` (snapshot K), `init` (= epoch:0), `final` (the last epoch), `random`
  (random signs, each layer's +1 share of the final signs kept; `random:K` keeps S_K's share),
  `stable:K` (fix only the weights whose last-flip epoch L_i <= K, to their final sign).
- `weights`: `init` (the trunk's epoch-0 state, full schedule again), `epoch:J` (the trunk's full
  training state at the end of epoch J: the schedule goes on from there), `epoch:last`,
  `fresh` (this run's own random initialisation).
- the recipe (RECIPE_KEYS: epochs, optimizer, scheduler, batch size, data subset) is the trunk's
  unless given on this run's command line.

What the trunk must have saved: `signs/epoch_NNN.pt` (sign snapshots) and
`checkpoints/init.ckpt` / `checkpoints/epoch_JJJ.ckpt` (qbn.callbacks.rewind.RewindPoints,
switched on by `rewind=trunk`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from .binary import binary_layers
from .errors import QbnError
from .run import read_summary, run_config
from .signs import (
    SnapshotError,
    distance_to_final,
    last_flip_epochs,
    list_snapshots,
    load_snapshot,
    snapshot_path,
    stack_history,
)

TRUNK_OPTION = "rewind=trunk"
# what a rewound run takes from its trunk unless this run's command line sets it
RECIPE_KEYS = ("trainer.max_epochs", "trainer.limit_train_batches", "optimizer", "scheduler",
               "dataset.batch_size", "dataset.augment", "dataset.train_subset", "dataset.test_subset",
               "dataset.val_size", "dataset.split_seed")
# what must be the same as the trunk's (else the trunk is "of another model")
MODEL_KEYS = ("model", "scaling.name", "binary", "dataset.name", "dataset.num_classes",
              "dataset.in_channels", "dataset.image_size")
_EPOCH_SPEC = re.compile(r"^(epoch|stable|random):(\d+|last)$")


class RewindError(QbnError):
    pass


@dataclass
class SignSpec:
    """Which signs a rewound run fixes: mode in epoch/final/random/stable, epoch K where it has one."""

    text: str
    mode: str
    epoch: int | str | None = None


@dataclass
class WeightSpec:
    """Where a rewound run's training restarts: mode in init/epoch/fresh (epoch J, or "last")."""

    text: str
    mode: str
    epoch: int | str | None = None


def parse_signs(text) -> SignSpec:
    """`epoch:K | init | final | random | random:K | stable:K` -> SignSpec."""
    t = str(text).strip()
    if t == "init":
        return SignSpec(t, "epoch", 0)
    if t in ("final", "random"):
        return SignSpec(t, t, None)
    m = _EPOCH_SPEC.match(t)
    if m:
        k = m.group(2)
        return SignSpec(t, m.group(1), k if k == "last" else int(k))
    raise RewindError(f"rewind.signs={t!r} is not understood: use epoch:K, init, final, random, random:K or stable:K")


def parse_weights(text) -> WeightSpec:
    """`init | epoch:J | epoch:last | fresh` -> WeightSpec."""
    t = str(text).strip()
    if t in ("init", "fresh"):
        return WeightSpec(t, t, 0 if t == "init" else None)
    m = _EPOCH_SPEC.match(t)
    if m and m.group(1) == "epoch":
        j = m.group(2)
        if j == "0":
            return WeightSpec(t, "init", 0)
        return WeightSpec(t, "epoch", j if j == "last" else int(j))
    raise RewindError(f"rewind.weights={t!r} is not understood: use init, epoch:J, epoch:last or fresh")


# ---- finding the trunk ---------------------------------------------------------------------

def find_trunk(trunk: str, output_dir: str | Path) -> Path:
    """A trunk run directory from an explicit path, or the newest completed run under
    <output_dir>/<trunk>/ (rewound runs excluded)."""
    if not trunk or str(trunk) in ("???", "None", "null"):
        raise RewindError("rewind.trunk is not set: give a run name (outputs/<name>/) or a run directory")
    path = Path(str(trunk)).expanduser()
    if (path / ".hydra").is_dir() or (path / "summary.json").exists():
        return _check_completed(path)
    folder = Path(output_dir) / str(trunk)
    if not folder.is_dir():
        raise RewindError(f"trunk '{trunk}' not found: it is neither a run directory nor a run name with runs under "
                          f"{folder}. Train one first: python -m qbn.train name={trunk} {TRUNK_OPTION} ...")
    runs = []
    for d in folder.iterdir():
        s = read_summary(d) if d.is_dir() else None
        if s and s.get("status") == "completed" and not s.get("rewind/trunk"):
            runs.append(((d / "summary.json").stat().st_mtime, d))
    if not runs:
        raise RewindError(f"trunk '{trunk}': no completed run under {folder}. Train one first: "
                          f"python -m qbn.train name={trunk} {TRUNK_OPTION} ...")
    return max(runs)[1]


def _check_completed(path: Path) -> Path:
    s = read_summary(path)
    if not s or s.get("status") != "completed":
        state = "has no summary.json" if not s else f"has status {s.get('status')!r}"
        raise RewindError(f"trunk {path} {state}: rewinding needs a completed trunk run")
    return path


def trunk_last_epoch(trunk_dir: Path) -> int:
    """E: the trunk's number of completed epochs (the epoch of its final signs)."""
    summary = read_summary(trunk_dir) or {}
    if summary.get("epochs") is not None:
        return int(summary["epochs"])
    snaps = list_snapshots(trunk_dir)
    if not snaps:
        raise RewindError(f"trunk {trunk_dir}: summary.json has no 'epochs' and there are no sign snapshots")
    return max(snaps)


# ---- config: recipe inherited, model checked -----------------------------------------------

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


def _leaves(value, prefix: str) -> dict:
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{prefix}.{k}"))
        return out
    return {prefix: value}


def inherit_recipe(cfg: DictConfig, trunk_cfg: DictConfig, overrides: list[str]) -> dict:
    """Set this run's RECIPE_KEYS to the trunk's, leaf by leaf, except those on the command line.
    Returns {key: value} of what changed."""
    changed = {}
    for key in RECIPE_KEYS:
        theirs = _plain(_select(trunk_cfg, key))
        if theirs is None and _select(cfg, key) is None:
            continue
        for leaf, value in _leaves(theirs, key).items():
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
            raise RewindError(f"trunk {trunk_dir} is of another model: its {key} is {theirs!r}, this run's is {ours!r}. "
                              f"Rewind with the trunk's settings (e.g. {_suggest(key, theirs)}) or choose another trunk.")


def _suggest(key: str, value) -> str:
    """The override that gives this run the trunk's value (a group choice where there is one)."""
    if isinstance(value, dict) and "name" in value:
        return f"{key}={value['name']}"
    if key.endswith(".name") and key.count(".") == 1:
        return f"{key[:-5]}={value}"
    return f"{key}=..." if isinstance(value, dict) else f"{key}={value}"


# ---- signs and weights from the trunk ------------------------------------------------------

def _resolve_epoch(value, last: int, what: str, trunk_dir: Path) -> int:
    k = last if value == "last" else int(value)
    if k < 0 or k > last:
        raise RewindError(f"{what}: epoch {k} is beyond trunk {trunk_dir}, which trained epochs 0..{last}")
    return k


def _snapshot(trunk_dir: Path, epoch: int) -> dict[str, torch.Tensor]:
    path = snapshot_path(trunk_dir, epoch)
    if not path.exists():
        raise RewindError(f"trunk {trunk_dir} lacks {path} (its sign snapshot of epoch {epoch}). A trunk saves "
                          f"snapshots with callbacks.sign_snapshots on (or {TRUNK_OPTION}); retrain the trunk with it.")
    try:
        return load_snapshot(path)
    except SnapshotError as e:
        raise RewindError(str(e)) from None


def random_signs(reference: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random signs, each weight +1 with probability = its layer's +1 share in `reference`."""
    out = {}
    for name, s in reference.items():
        p = s.float().mean().item()
        out[name] = torch.rand(s.shape, generator=generator) < p
    return out


def stable_mask(history: torch.Tensor, k: int) -> torch.Tensor:
    """Flat bool mask of the weights whose last-flip epoch L_i <= k (STUDY.md)."""
    return last_flip_epochs(history) <= k


def select_signs(trunk_dir: Path, spec: SignSpec, last: int, seed: int) -> tuple[dict, dict | None, int | None]:
    """(signs, mask or None, K) for `spec` from the trunk's snapshots."""
    if spec.mode == "final":
        return _snapshot(trunk_dir, last), None, last
    if spec.mode == "epoch":
        k = _resolve_epoch(spec.epoch, last, f"rewind.signs={spec.text}", trunk_dir)
        return _snapshot(trunk_dir, k), None, k
    if spec.mode == "random":
        k = last if spec.epoch is None else _resolve_epoch(spec.epoch, last, f"rewind.signs={spec.text}", trunk_dir)
        g = torch.Generator().manual_seed(int(seed) * 7919 + 17)
        return random_signs(_snapshot(trunk_dir, k), g), None, (None if spec.epoch is None else k)
    if spec.mode == "stable":
        k = _resolve_epoch(spec.epoch, last, f"rewind.signs={spec.text}", trunk_dir)
        snaps = [_snapshot(trunk_dir, e) for e in range(last + 1)]
        final = snaps[-1]
        # L_i is per weight, so each layer's own history gives its part of the mask
        mask = {name: stable_mask(stack_history(snaps, [name]), k).view(s.shape) for name, s in final.items()}
        return final, mask, k
    raise RewindError(f"rewind.signs={spec.text!r} is not understood")


def share_final(trunk_dir: Path, last: int) -> list[float] | None:
    """1 - d_K for K = 0..E from the trunk's snapshots (None when some are missing)."""
    snaps = list_snapshots(trunk_dir)
    if any(e not in snaps for e in range(last + 1)):
        return None
    history = stack_history([load_snapshot(snaps[e]) for e in range(last + 1)])
    return (1 - distance_to_final(history)).tolist()


def weights_file(trunk_dir: Path, spec: WeightSpec, last: int) -> tuple[Path | None, int | None]:
    """(file, J): the trunk file a rewound run restarts from (None for fresh)."""
    if spec.mode == "fresh":
        return None, None
    if spec.mode == "init":
        path = trunk_dir / "checkpoints" / "init.ckpt"
        if not path.exists():
            raise RewindError(f"trunk {trunk_dir} lacks {path} (its epoch-0 state). A trunk saves it with "
                              f"{TRUNK_OPTION} (callbacks.rewind_points); retrain the trunk with it, or use rewind.weights=fresh.")
        return path, 0
    j = _resolve_epoch(spec.epoch, last, f"rewind.weights={spec.text}", trunk_dir)
    path = trunk_dir / "checkpoints" / f"epoch_{j:03d}.ckpt"
    if not path.exists() and j == last and (trunk_dir / "checkpoints" / "last.ckpt").exists():
        path = trunk_dir / "checkpoints" / "last.ckpt"
    if not path.exists():
        raise RewindError(f"trunk {trunk_dir} lacks {path} (its state at the end of epoch {j}). A trunk saves it with "
                          f"{TRUNK_OPTION} rewind.save_weights=[{j}]; retrain the trunk with it.")
    return path, j


# ---- the plan a run follows ----------------------------------------------------------------

@dataclass
class RewindPlan:
    """Everything a rewound run needs, resolved and checked before training starts."""

    trunk_dir: Path
    signs_spec: SignSpec
    weights_spec: WeightSpec
    last_epoch: int
    signs: dict[str, torch.Tensor]
    mask: dict[str, torch.Tensor] | None
    k: int | None
    j: int | None
    weights_path: Path | None
    inherited: dict = field(default_factory=dict)

    @property
    def resume_path(self) -> Path | None:
        """A full training state to continue from (epoch:J), passed to trainer.fit as ckpt_path."""
        return self.weights_path if self.weights_spec.mode == "epoch" else None

    def summary(self) -> dict:
        fixed = sum(s.numel() for s in self.signs.values())
        if self.mask is not None:
            fixed = sum(int(m.sum()) for m in self.mask.values())
        total = sum(s.numel() for s in self.signs.values())
        trunk = read_summary(self.trunk_dir) or {}
        return {"rewind/trunk": str(self.trunk_dir), "rewind/mode": self.signs_spec.mode,
                "rewind/signs": self.signs_spec.text, "rewind/K": self.k, "rewind/weights": self.weights_spec.text,
                "rewind/J": self.j, "rewind/fixed_share": fixed / max(total, 1),
                "rewind/trunk_epochs": self.last_epoch, "rewind/trunk_test_acc": trunk.get("test/acc"),
                "rewind/inherited": " ".join(f"{k}={v}" for k, v in self.inherited.items())}


def plan_rewind(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> RewindPlan | None:
    """Resolve cfg.rewind into a plan (None when rewinding is off); sets the inherited recipe in cfg."""
    rw = cfg.get("rewind") or {}
    if not rw.get("signs"):
        return None
    signs_spec, weights_spec = parse_signs(rw.signs), parse_weights(rw.get("weights") or "init")
    trunk_dir = find_trunk(rw.get("trunk"), cfg.paths.output_dir).resolve()
    here = Path(run_dir).resolve()
    if here == trunk_dir or trunk_dir in here.parents:
        raise RewindError(f"this run's directory {here} is inside its trunk {trunk_dir}: a rewound run never writes there")
    trunk_cfg = run_config(trunk_dir)
    if trunk_cfg is None:
        raise RewindError(f"trunk {trunk_dir} lacks .hydra/config.yaml: is it a qbn run directory?")
    check_same_model(cfg, trunk_cfg, trunk_dir)
    inherited = inherit_recipe(cfg, trunk_cfg, overrides)
    last = trunk_last_epoch(trunk_dir)
    signs, mask, k = select_signs(trunk_dir, signs_spec, last, cfg.seed)
    path, j = weights_file(trunk_dir, weights_spec, last)
    return RewindPlan(trunk_dir, signs_spec, weights_spec, last, signs, mask, k, j, path, inherited)


def rewind_callbacks(plan: RewindPlan | None) -> list:
    """[ApplyRewind] for a rewound run (first, so instruments see the fixed signs), else []."""
    if plan is None:
        return []
    from .callbacks.rewind import ApplyRewind

    return [ApplyRewind(plan)]


def _strip_optional(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] not in ("fixed_signs", "fixed_mask")}


def load_weights(module: nn.Module, path: Path) -> None:
    """Load the trunk's saved state (weights, BatchNorm statistics, scales) into `module`, exactly."""
    from .checkpoint import check_compatible, load_checkpoint

    state = _strip_optional(load_checkpoint(path)["state_dict"])
    for layer in binary_layers(module).values():
        layer.release_signs()
    check_compatible(state, module, f"trunk state {path}")
    module.load_state_dict(state, strict=True)


def fix_net_signs(net: nn.Module, signs: dict[str, torch.Tensor], mask: dict[str, torch.Tensor] | None = None) -> None:
    """Fix every binary layer of `net` to `signs` (by layer name relative to `net`)."""
    layers = binary_layers(net)
    if set(layers) != set(signs):
        missing = sorted(set(layers) - set(signs)) or sorted(set(signs) - set(layers))
        raise RewindError(f"the trunk's snapshot does not name this model's binary layers (e.g. {missing[0]}): "
                          "rewind with the trunk's model")
    for name, layer in layers.items():
        if tuple(signs[name].shape) != tuple(layer.weight.shape):
            raise RewindError(f"the trunk's snapshot: layer {name} has shape {tuple(signs[name].shape)}, "
                              f"this model's {tuple(layer.weight.shape)}")
        layer.fix_signs(signs[name], None if mask is None else mask[name])


def apply_plan(plan: RewindPlan, module: nn.Module) -> None:
    """At a fresh start: restore the trunk's epoch-0 state (weights=init), then fix the signs."""
    if plan.weights_spec.mode == "init":
        load_weights(module, plan.weights_path)
    fix_net_signs(module.net, plan.signs, plan.mask)


__all__ = ["RECIPE_KEYS", "RewindError", "RewindPlan", "apply_plan", "check_same_model", "find_trunk", "fix_net_signs",
           "inherit_recipe", "load_weights", "parse_signs", "parse_weights", "plan_rewind", "rewind_callbacks", "random_signs",
           "select_signs", "share_final", "stable_mask", "weights_file"]
