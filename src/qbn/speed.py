"""How a run's step is made fast: the memory format (`channels_last`) and torch.compile (`compile`).

Both change how the same model is computed, never what it computes (float rounding aside), so a run
directory met again with other values of these two options is still the same run (qbn.run_guard).

channels_last: true | false | auto. `auto` follows a measurement (experiments/bench/train_step.py,
experiments/one_seed_runs.md): on a CPU, channels_last made the FP and the BWN step of resnet20
about 1.25x faster (2 cores, AVX without AVX2, torch 2.14), so auto is on for CPU training. On other
devices it stays off until measured there (experiments/bench/gpu_step.py has the column).

compile: false | true | a torch.compile mode (default, reduce-overhead, max-autotune,
max-autotune-no-cudagraphs) | a debugging backend (eager: dynamo's graph capture alone, no code
generated; aot_eager: also AOTAutograd's forward and backward graphs), to check graphs quickly.
"""

from __future__ import annotations

import torch
from torch import nn

CHANNELS_LAST = (True, False, "auto")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_BACKENDS = ("eager", "aot_eager")
COMPILE = (True, False, *COMPILE_MODES, *COMPILE_BACKENDS)
# Devices where `channels_last: auto` is on, by measurement (see the module docstring).
CHANNELS_LAST_AUTO_ON = ("cpu",)


def training_device(accelerator: str | None) -> str:
    """The torch device type Lightning will train on for `trainer.accelerator` (auto: CUDA, else MPS, else CPU)."""
    accelerator = str(accelerator or "auto").lower()
    if accelerator == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    return "cuda" if accelerator == "gpu" else accelerator


def use_channels_last(setting: bool | str, accelerator: str | None) -> bool:
    """Whether the model trains in channels_last memory format (`auto`: on the devices measured faster)."""
    if setting == "auto":
        return training_device(accelerator) in CHANNELS_LAST_AUTO_ON
    return bool(setting)


def compile_options(setting: bool | str | None) -> dict | None:
    """torch.compile's keyword arguments for the `compile` option, None when off."""
    if setting is None or setting is False:
        return None
    if setting is True:
        return {}
    if setting in COMPILE_BACKENDS:
        return {"backend": setting}
    return {"mode": setting}


def compile_in_place(net: nn.Module, options: dict | None) -> nn.Module:
    """Compile `net`'s forward (hooks included) in place: its state dict keeps its keys, so
    checkpoints of a compiled run load into an uncompiled model and back."""
    if options is not None and getattr(net, "_compiled_call_impl", None) is None:
        net.compile(**options)
    return net
