"""The golden run: one small, seeded digits run whose numbers and packed file must not change when
the code is reorganised (tests/test_golden.py; tests/fixtures/golden/run.json holds what it gave).

Run as a script to record the fixture again (only when a change of numbers is intended):
    python -m qbn.testing.golden
"""

from __future__ import annotations

import hashlib
import json
import platform as pyplatform
import sys
import tempfile
from pathlib import Path

import torch

from qbn.checkpoint import model_from_checkpoint
from qbn.export import export_module, load_bytes, report_bytes
from qbn.rundir import RunDir

from .runs import ROOT, merged, run_cli

# A whole digits epoch with every default instrument, the report and its figures, made by the CLI.
# The test suite shares this one run (tests/conftest.py: shared_run); channels_last is spelled out
# because it changes which kernels run. The digits split: 359 test images, 143 validation images.
GOLDEN_OVERRIDES = ("dataset=digits", "trainer.max_epochs=1", "seed=0", "channels_last=false")
GOLDEN_TEST_IMAGES, GOLDEN_VAL_IMAGES = 359, 143
FIXTURE = ROOT / "tests" / "fixtures" / "golden" / "run.json"
SUMMARY_KEYS = ("test/acc", "val/acc_best", "params", "binarized_params", "epochs", "global_step")


def golden(*overrides: str) -> list[str]:
    """GOLDEN_OVERRIDES with `overrides` (those setting a key again replace its entry)."""
    return merged(GOLDEN_OVERRIDES, *overrides)


def train_golden(run_dir: Path) -> None:
    """Train the golden run into run_dir with `python -m qbn.train`, as a user would."""
    r = run_cli("qbn.train", *GOLDEN_OVERRIDES, f"hydra.run.dir={run_dir}")
    if r.returncode != 0:
        raise RuntimeError(f"the golden run failed:\n{r.stderr[-3000:]}")


def platform() -> dict:
    """What decides the float kernels a CPU run uses: where it differs, last bits may differ. The
    capability alone is not enough: an AMD EPYC and an Intel CPU that both report AVX512 move a few
    latent weights of the golden run across zero differently, so the CPU's model is part of it."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu": cpu_model()}


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (/proc/cpuinfo), else Python's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return pyplatform.processor() or pyplatform.machine()


def measure(run_dir: Path) -> dict:
    """The golden numbers of a trained run directory: summary values, its packed file (written in
    memory, no source paths in the header) and the signs decoded back from that file."""
    summary = json.loads(RunDir(run_dir).summary.read_text())
    module, cfg = model_from_checkpoint(RunDir(run_dir).last_ckpt)
    buf = export_module(module, cfg)
    packed = load_bytes(buf)
    signs = hashlib.sha256()
    positive = {}
    for name in sorted(packed.header["layers"]):
        s = packed.net.get_submodule(name).weight.detach() > 0
        signs.update(name.encode())
        signs.update(s.numpy().tobytes())
        positive[name] = [int(s.sum()), s.numel()]
    return {
        "overrides": list(GOLDEN_OVERRIDES), "test_images": GOLDEN_TEST_IMAGES, "val_images": GOLDEN_VAL_IMAGES,
        "platform": platform(),
        "summary": {k: summary[k] for k in SUMMARY_KEYS},
        "packed": {"bytes": len(buf),
                   "bits_per_binarized_weight": report_bytes(buf)["totals"]["bits_per_binarized_weight"],
                   "sha256": hashlib.sha256(buf).hexdigest(), "signs_sha256": signs.hexdigest(),
                   "positive_signs": positive},
    }


def main() -> int:
    """Train the golden run in a temporary directory and write tests/fixtures/golden/run.json."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "golden"
        train_golden(run_dir)
        record = measure(run_dir)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {FIXTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
