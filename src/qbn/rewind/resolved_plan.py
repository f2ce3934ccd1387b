"""The plan a rewound run follows, resolved and checked before training starts, and applying it
to a model (the trunk's state restored, the signs fixed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..binary import binary_layers
from ..checkpoint import check_compatible, load_checkpoint
from ..rundir import RunDir
from .spec import RewindError, SignSpec, WeightSpec, parse_signs, parse_weights
from .trunk import check_outside_trunk, find_trunk, select_signs, trunk_last_epoch, weights_file


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
    inherited: str = ""   # the recipe keys taken from the trunk (qbn.rewind.recipe.rewound_config)

    @property
    def resume_path(self) -> Path | None:
        """A full training state to continue from (epoch:J), passed to trainer.fit as ckpt_path."""
        return self.weights_path if self.weights_spec.mode == "epoch" else None

    def summary(self) -> dict:
        fixed = sum(s.numel() for s in self.signs.values())
        if self.mask is not None:
            fixed = sum(int(m.sum()) for m in self.mask.values())
        total = sum(s.numel() for s in self.signs.values())
        trunk = RunDir(self.trunk_dir).read_summary() or {}
        return {"rewind/trunk": str(self.trunk_dir), "rewind/mode": self.signs_spec.mode,
                "rewind/signs": self.signs_spec.text, "rewind/K": self.k, "rewind/share": self.signs_spec.share,
                "rewind/weights": self.weights_spec.text,
                "rewind/J": self.j, "rewind/fixed_share": fixed / max(total, 1),
                "rewind/trunk_epochs": self.last_epoch, "rewind/trunk_test_acc": trunk.get("test/acc"),
                "rewind/inherited": self.inherited}


def plan_rewind(trunk: str | Path, signs: str, weights: str = "init", seed: int = 0, output_dir: str | Path = "outputs",
                run_dir: str | Path | None = None, inherited: str | None = None) -> RewindPlan:
    """Resolve a rewound run's options (rewind.trunk, rewind.signs, rewind.weights) into a plan:
    the trunk found, the signs read, the rewind point's file found, each mistake one RewindError."""
    signs_spec, weights_spec = parse_signs(signs), parse_weights(weights)
    trunk_dir = find_trunk(trunk, output_dir).resolve()
    if run_dir is not None:
        check_outside_trunk(run_dir, trunk_dir)
    last = trunk_last_epoch(trunk_dir)
    chosen, mask, k = select_signs(trunk_dir, signs_spec, last, seed)
    path, j = weights_file(trunk_dir, weights_spec, last)
    return RewindPlan(trunk_dir, signs_spec, weights_spec, last, chosen, mask, k, j, path, inherited or "")


def _strip_optional(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] not in ("fixed_signs", "fixed_mask")}


def load_weights(module: nn.Module, path: Path) -> None:
    """Load the trunk's saved state (weights, BatchNorm statistics, scales) into `module`, exactly."""
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
