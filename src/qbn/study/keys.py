"""Every name the study reads from or writes to a run: qbn.train options it sets, summary.json keys
and signs.json / kernels.json fields it reads. One place, so a renamed key is one edit here.

The study plans runs with these options and the report reads the runs' files with these keys;
nothing else in qbn.study spells them.
"""

from __future__ import annotations

# ---- qbn.train options the study sets (overrides) -----------------------------------------------
NORM = "model.backbone.norm"  # batch | none: BatchNorm after each binary conv, or none
NORMS = ("batch", "none")
SAVE_SHARES = "rewind.save_shares"  # a trunk saves signs/share_F.pt + checkpoints/share_F.ckpt
REWIND = "rewind"  # off | trunk | rewound | freeze
REWIND_TRUNK = "rewind.trunk"
REWIND_SIGNS = "rewind.signs"  # share:F | random | init | final | epoch:K | ...
REWIND_WEIGHTS = "rewind.weights"  # init: retrain from the trunk's initial weights
FREEZE_AT = "rewind.freeze_signs_at"  # share:F with rewind=freeze: fix the signs at that step, train on
QBN_BITS = "qbn.bits"  # 9: no codebook (the matched control)
QBN_METHOD = "qbn.method"  # topk | learned
QBN_LEARNED_LR = "qbn.learned_lr"  # learned: the patterns' learning rate (null: the model's)
QBN_CODEBOOK = "qbn.codebook"  # per_layer | shared
QBN_FROM = "qbn.from_ckpt"  # the BWN fine-tuned (and the teacher when distilling)
QBN_FP_REFERENCE = "qbn.fp_reference"
DISTILL_WEIGHT = "qbn.distill.weight"  # 0: off
DISTILL_TEMPERATURE = "qbn.distill.temperature"
CONTROL_BITS = 9  # n = 9: every 3x3 kernel its own codeword, i.e. no codebook


def method_overrides(method: str) -> list[str]:
    """A study method name to qbn.train overrides: `topk`, `learned`, or `learned@LR` (learned codebooks whose
    patterns train at learning rate LR; the report chooses among variants on the validation split)."""
    name, _, lr = str(method).partition("@")
    return [f"{QBN_METHOD}={name}", *([f"{QBN_LEARNED_LR}={float(lr):g}"] if lr else [])]


def share_spec(share: float) -> str:
    """The rewind grammar's name of a share of training (rewind.signs / rewind.freeze_signs_at)."""
    return f"share:{share:g}"


def parse_share(spec: str) -> float | None:
    """`share:F` -> F; None for every other spec (init, random, final, ...)."""
    spec = str(spec)
    return float(spec.split(":", 1)[1]) if spec.startswith("share:") else None


# ---- summary.json ----------------------------------------------------------------------------------
STATUS = "status"
SEED = "seed"
TEST_ACC = "test/acc"
VAL_ACC = "val/acc"
EPOCHS = "max_epochs"
GLOBAL_STEP = "global_step"
SCALING = "scaling"
OPTIMIZER, SCHEDULER = "optimizer", "scheduler"
WALL = "wall_s"
QUANTILES = ("0.90", "0.95", "0.99")


def e_frac(q: str, flipped: bool = False) -> str:
    """E_q as a share of training steps, over all weights or over the weights that ever flip."""
    return f"signs/E_{q}_frac" + ("_flipped" if flipped else "")


E_EPOCH = "signs/E_{q}"  # the epoch-level E_q (kept for comparison)
EVER_FLIPPED = "signs/ever_flipped"  # share of binarized weights that flip at least once
CHANGED = "signs/changed_from_init"
ENTROPY = "kernels/entropy"  # plug-in, bits per 3x3 kernel
ENTROPY_MM = "kernels/entropy_mm"  # Miller-Madow bias-corrected
NULL_ENTROPY_MM = "kernels/null_entropy_mm"  # the same layers' signs shuffled within each layer
TOP8 = "kernels/top8"
NULL_TOP8 = "kernels/null_top8"
FILE_ACC = "export/test_acc"  # accuracy of the packed file, evaluated from the file
FILE_BITS = "export/bits_per_binarized_weight"
FILE_BYTES = "export/file_bytes"

# ---- signs.json / kernels.json -------------------------------------------------------------------
STABLE_SHARE = "stable_share"  # signs.json: share of weights stable (no later flip) against steps
# signs.json: the step-resolution figures, {"total_steps", "overall": {..., stable_share}, "layers"}
STEP_TIMING = "steps"
KERNEL_HISTORY = "history"  # kernels.json: {epoch: {entropy, entropy_mm?, top8, ...}}
UNIFORM_BITS = 9.0  # 512 equally likely 3x3 sign kernels
UNIFORM_TOP8 = 8 / 512
