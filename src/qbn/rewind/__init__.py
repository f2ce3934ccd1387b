"""Rewinding with fixed signs (docs/rewind.md; primary sub-networks, docs/study.md): a rewound run
takes a trunk run directory, fixes every binarized weight's sign to the trunk's S_K (or a control),
and trains again from a rewind point.

- spec: the grammar of `rewind.signs` (`epoch:K | init | final | random | random:K | stable:K |
  share:F | random:share:F`), `rewind.weights` (`init | epoch:J | epoch:last | fresh`),
  `rewind.freeze_signs_at` (`K | share:F`) and `rewind.save_shares`, typed.
- trunk: finding the trunk and reading its signs and saved states.
- recipe: rewound_config, the named step that gives a rewound run its trunk's recipe (and checks
  the trunk's model) before anything is built.
- plan: everything a rewound run needs, resolved before training, and applying it to a model.
- __main__: `python -m qbn.rewind`, the trunk then the rewound runs in one command.
- callbacks: RewindPoints (a trunk saves what rewinding needs), ApplyRewind, FreezeSigns.
- sweep_view: the rewinding table and figure of a sweep.

What the trunk must have saved: `signs/epoch_NNN.pt` (sign snapshots) and
`checkpoints/init.ckpt` / `checkpoints/epoch_JJJ.ckpt`, and for share specs `signs/share_F.pt` /
`checkpoints/share_F.ckpt` (RewindPoints, switched on by `rewind=trunk`).
"""

from .callbacks import ApplyRewind, FreezeSigns, RewindPoints, start_checkpoint
from .recipe import (
    MODEL_KEYS,
    RECIPE_KEYS,
    check_same_model,
    inherit_recipe,
    override_keys,
    rewound_config,
)
from .resolved_plan import RewindPlan, apply_plan, fix_net_signs, load_weights, plan_rewind
from .spec import (
    FreezeAt,
    RewindError,
    SignSpec,
    WeightSpec,
    check_shares,
    parse_freeze_at,
    parse_share,
    parse_signs,
    parse_weights,
)
from .trunk import (
    TRUNK_OPTION,
    check_outside_trunk,
    find_trunk,
    random_signs,
    select_signs,
    share_checkpoint_path,
    share_final,
    stable_mask,
    trunk_last_epoch,
    weights_file,
)

__all__ = ["MODEL_KEYS", "RECIPE_KEYS", "TRUNK_OPTION", "ApplyRewind", "FreezeAt", "FreezeSigns", "RewindError",
           "RewindPlan", "check_shares", "parse_freeze_at", "parse_share", "share_checkpoint_path",
           "RewindPoints", "SignSpec", "WeightSpec", "apply_plan", "check_outside_trunk", "check_same_model",
           "find_trunk", "fix_net_signs", "inherit_recipe", "load_weights", "override_keys", "parse_signs",
           "parse_weights", "plan_rewind", "random_signs", "rewound_config", "select_signs", "start_checkpoint",
           "share_final", "stable_mask", "trunk_last_epoch", "weights_file"]
