"""Each set of choices once. The schema's fields check them; the mathematics that acts on a choice
(qbn.binary.ste, qbn.kernels.quantize, qbn.models) takes its tuple from here."""

from __future__ import annotations

STE_MODES = ("clipped", "identity")                       # binary.ste
CODEBOOK_MODES = ("per_layer", "shared")                  # qbn.codebook
ALLOCATIONS = ("distortion", "coverage")                  # qbn.allocation (with qbn.budget)
PROGRESSIVE_ORDERS = ("deepest_first", "shallowest_first")   # qbn.progressive_order
METHODS = ("topk", "learned")                             # qbn.method
LEARNED_INITS = ("topk", "random")                        # qbn.learned_init
NORMS = ("batch", "none")                                 # model.backbone.norm
STUDY_LOGGERS = ("csv", "wandb")                          # the study's logger
