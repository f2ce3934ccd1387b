"""`python -m qbn.study report` on hand-made run directories (no training): every number in
RESULTS.md equals a direct computation from the runs' summary.json / signs.json / kernels.json,
the report regenerates byte for byte, and it never changes a run directory."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from pathlib import Path

from qbn.study.collect import (
    kernel_table,
    qbn_table,
    read_study,
    rewind_table,
    scaling_table,
    settle_table,
)
from qbn.study.report import write_results
from qbn.study.verdicts import UNTESTED
from qbn.testing.runs import run_cli

T_2 = 4.302652729911275  # Student's t, 97.5 % quantile, 2 degrees of freedom
SEEDS = (0, 1, 2)
# test accuracy by recipe, scheme and seed: none/learnable/lq within a fraction of a point of xnor
# for adam; for sgd, none is 3 points below xnor on every seed
ACC = {"adam_cosine": {"xnor": (0.900, 0.910, 0.905), "none": (0.902, 0.909, 0.906), "learnable": (0.901, 0.912, 0.904),
                       "lq": (0.899, 0.911, 0.905), "fp": (0.930, 0.931, 0.929)},
       "sgd_step": {"xnor": (0.880, 0.885, 0.882), "none": (0.850, 0.856, 0.851), "learnable": (0.881, 0.884, 0.883),
                    "lq": (0.879, 0.886, 0.880), "fp": (0.920, 0.921, 0.919)}}


def _write(run: Path, summary: dict, signs: dict | None = None, kernels: dict | None = None) -> Path:
    (run / ".hydra").mkdir(parents=True, exist_ok=True)
    (run / ".hydra" / "overrides.yaml").write_text(f"- seed={summary['seed']}\n")
    (run / "summary.json").write_text(json.dumps({"status": "completed", "wall_s": 10.0, **summary}))
    if signs:
        (run / "signs.json").write_text(json.dumps(signs))
    if kernels:
        (run / "kernels.json").write_text(json.dumps({"overall": kernels}))
    return run


def _signs(epochs: int, e90: int, seed: int, never: float = 0.7) -> dict:
    """signs.json of an xnor run; `never`: the share of signs that never flip (stable at epoch 0)."""
    d = [max(0.0, 0.3 - 0.1 * e - 0.01 * seed) for e in range(epochs + 1)]
    d[-1] = 0.0
    stable = [never + (1 - never) * e / epochs for e in range(epochs + 1)]
    overall = {"E_0.90": e90, "E_0.95": e90 + 1, "E_0.99": epochs, "d_e": d, "changed_from_init": 0.3 + 0.01 * seed,
               "stable_fraction": stable}
    return {"epochs": list(range(epochs + 1)), "overall": overall, "layers": {"layer1.0.conv1": {"E_0.95": e90 + seed}}}


def _kernels(seed: int) -> dict:
    return {"entropy": 7.7 + 0.05 * seed, "top1": 0.08, "top8": 0.22 + 0.01 * seed, "top32": 0.39,
            "uniform": {"top1": 1 / 512, "top8": 8 / 512, "top32": 32 / 512}, "coverage": [0.08, 0.22]}


def make_study(root: Path) -> Path:
    study = root / "study"
    for recipe, schemes in ACC.items():
        opt, sched = recipe.split("_")
        for scheme, accs in schemes.items():
            for seed, acc in zip(SEEDS, accs, strict=True):
                binary = scheme != "fp"
                _write(study / "scaling" / f"{recipe}-{scheme}-s{seed}",
                       {"seed": seed, "scaling": scheme, "binary": binary, "optimizer": opt, "scheduler": sched, "max_epochs": 4,
                        "test/acc": acc},
                       _signs(4, (1, 1, 2)[seed] if opt == "adam" else 0, seed, 0.7 if opt == "adam" else 0.97)
                       if scheme == "xnor" else None, _kernels(seed) if scheme == "xnor" else None)
    for seed in SEEDS:   # a longer schedule for the signs stage: E_0.90 = 6 of 8 (late)
        _write(study / "signs" / f"adam_cosine-long-s{seed}",
               {"seed": seed, "scaling": "xnor", "optimizer": "adam", "scheduler": "cosine", "max_epochs": 8, "test/acc": 0.9},
               _signs(8, 6, seed))
        trunk = study / "scaling" / f"adam_cosine-xnor-s{seed}"
        for signs, k, mode, drop in (("epoch:1", 1, "epoch", (0.002, 0.001, 0.003)), ("random", None, "random", (0.05, 0.06, 0.04))):
            _write(study / "rewind" / f"s{seed}-winit-{signs.replace(':', '')}",
                   {"seed": seed, "optimizer": "adam", "scheduler": "cosine", "max_epochs": 4,
                    "test/acc": ACC["adam_cosine"]["xnor"][seed] - drop[seed], "rewind/trunk": str(trunk),
                    "rewind/weights": "init", "rewind/signs": signs, "rewind/mode": mode, "rewind/K": k, "rewind/fixed_share": 1.0})
        for bits, drop in ((4, (0.004, 0.002, 0.003)), (2, (0.03, 0.04, 0.035))):
            _write(study / "qbn" / f"s{seed}-per_layer-n{bits}",
                   {"seed": seed, "optimizer": "adam", "scheduler": "cosine", "max_epochs": 1, "test/acc": 0.0,
                    "qbn": {"bits": bits, "codebook": "per_layer", "from_ckpt": str(trunk)},
                    "export/test_acc": ACC["adam_cosine"]["xnor"][seed] - drop[seed],
                    "export/bits_per_binarized_weight": bits / 9 + 0.01, "export/file_bytes": 1000 + bits})
    (study / "study.json").write_text(json.dumps({"scale": "cpu", "invocations": [
        {"command": "python -m qbn.study scale=cpu", "commit": "abc123", "machine": "test machine", "started": "then"}]}))
    return study


def _ci(values):
    m, s = statistics.fmean(values), statistics.stdev(values)
    h = T_2 * s / math.sqrt(len(values))
    return m, m - h, m + h


def _pp(x):
    return f"{100 * x:+.2f}"


def test_claim_tables_equal_a_direct_computation(tmp_path):
    study = make_study(tmp_path)
    rows = read_study(study)
    scaling = scaling_table(rows)
    for recipe, schemes in ACC.items():
        diffs = [a - b for a, b in zip(schemes["none"], schemes["xnor"], strict=True)]
        m, lo, hi = _ci(diffs)
        d = scaling[recipe]["schemes"]["none"]["diff"]
        assert (d.mean, d.lo, d.hi) == (approx(m), approx(lo), approx(hi))
    assert scaling["adam_cosine"]["verdict"] == "held"      # every interval within ±1 point
    assert scaling["sgd_step"]["verdict"] == "did not hold"  # none is 3 points below xnor

    settle = settle_table(rows)
    assert settle["adam, cosine, 4 epochs"]["share"].mean == approx((0.25 + 0.25 + 0.5) / 3)  # E_0.90 = 1, 1, 2 of 4
    assert settle["adam, cosine, 4 epochs"]["verdict"] == "inconclusive"   # interval [-0.03, 0.69] straddles 0.5
    assert settle["adam, cosine, 8 epochs"]["verdict"] == "did not hold"   # 6 of 8
    assert settle["adam, cosine, 4 epochs"]["never_flipped"].mean == approx(0.7)
    assert settle["sgd, step, 4 epochs"]["share"].mean == 0.0   # E_0.90 = 0 only because 97 % of signs never flip
    assert settle["sgd, step, 4 epochs"]["verdict"] == UNTESTED

    rewind = rewind_table(rows, study)
    g = next(g for g in rewind["groups"] if g["signs"] == "epoch:1")
    m, lo, hi = _ci([-0.002, -0.001, -0.003])
    assert (g["vs_trunk"].mean, g["vs_trunk"].lo, g["vs_trunk"].hi) == (approx(m), approx(lo), approx(hi))
    assert g["final_at_K"] == approx(statistics.fmean(1 - (0.2 - 0.01 * s) for s in SEEDS))
    assert rewind["verdict"] == "held"
    assert g["vs_random"].mean == approx(statistics.fmean([0.05 - 0.002, 0.06 - 0.001, 0.04 - 0.003]))

    kernels = kernel_table(rows)
    e = kernels["adam_cosine"]["entropy"]
    m, lo, hi = _ci([7.7, 7.75, 7.8])
    assert (e.mean, e.lo, e.hi) == (approx(m), approx(lo), approx(hi))
    assert kernels["adam_cosine"]["verdict"] == "held"

    q = qbn_table(rows, study)
    n4 = next(g for g in q["groups"] if g["bits"] == 4)
    m, lo, hi = _ci([-0.004, -0.002, -0.003])
    assert (n4["vs_bwn"].mean, n4["vs_bwn"].lo, n4["vs_bwn"].hi) == (approx(m), approx(lo), approx(hi))
    assert n4["bits_per_weight"] == approx(4 / 9 + 0.01)
    assert q["verdict"] == "held"
    assert next(g for g in q["groups"] if g["bits"] == 2)["verdict"] == "did not hold"


def approx(x):
    import pytest

    return pytest.approx(x, abs=1e-9)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "figures" not in p.parts and p.name != "RESULTS.md"}


def test_results_md_cites_the_computed_numbers_and_regenerates_byte_for_byte(tmp_path):
    study = make_study(tmp_path)
    before = _digest(study)
    path = write_results(study)
    text = path.read_text()
    m, lo, hi = _ci([a - b for a, b in zip(ACC["sgd_step"]["none"], ACC["sgd_step"]["xnor"], strict=True)])
    assert "| none | 3 | " in text and f"{_pp(m)} [{_pp(lo)}, {_pp(hi)}] | did not hold |" in text
    assert "**adam_cosine** (4 epochs): **held**" in text and "**sgd_step** (4 epochs): **did not hold**" in text
    assert "`python -m qbn.study scale=cpu` at commit abc123, started then, did not finish" in text
    for fig in ("claim1_scaling.png", "claim2_sign_distance.png", "claim2_rewind.png", "claim3_coverage.png", "claim4_qbn.png"):
        assert (study / "figures" / fig).stat().st_size > 1000, fig
        assert f"figures/{fig}" in text
    figures = {p.name: p.read_bytes() for p in (study / "figures").iterdir()}
    result = run_cli("qbn.study", "report", str(study))
    assert result.returncode == 0, result.stderr
    assert path.read_text() == text
    assert {p.name: p.read_bytes() for p in (study / "figures").iterdir()} == figures
    assert _digest(study) == before   # the run directories (and study.json) are untouched


def test_report_of_a_folder_without_runs_is_one_clear_line(tmp_path):
    result = run_cli("qbn.study", "report", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"qbn: {tmp_path} holds no runs (<stage>/<run>/summary.json): run python -m qbn.study first"]


def test_a_partial_study_says_so_with_its_planned_runs(tmp_path):
    """With the study's composed config in .study/ (as `python -m qbn.study` leaves it), the report
    counts the planned runs per stage and says, on top, how many are complete."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from qbn.config import CONFIG_DIR

    study = make_study(tmp_path)
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR / "study"), version_base="1.3"):
        cfg = compose("study", overrides=[f"dir={study}", "scale=cpu"])
    (study / ".study").mkdir()
    OmegaConf.save(cfg, study / ".study" / "config.yaml")
    rewound = next(study.glob("rewind/*/"))   # the machine's paths stay out of the report
    (rewound / ".hydra" / "overrides.yaml").write_text(
        f"- seed=0\n- paths.data_dir=/some/machine/data\n- rewind.trunk={study.resolve()}/scaling/adam_cosine-xnor-s0\n")
    text = write_results(study).read_text()
    assert "/some/machine" not in text and str(tmp_path) not in text
    assert f"{rewound.name}: seed=0 rewind.trunk=$STUDY/scaling/adam_cosine-xnor-s0" in text
    done = len(list(study.glob("*/*/summary.json")))
    assert f"**Partial: {done} of the 102 planned runs are complete**" in text
    assert "| scaling | 30 | 30 | 30 | 0 |" in text and "| rewind | 36 | 6 | 6 | 0 |" in text


def test_readings_written_by_hand_follow_their_claim_and_regenerate_byte_for_byte(tmp_path):
    """readings.md in the study directory: each '## <key>' block follows its section, marked as
    written by hand; the report regenerates byte for byte; an unknown key is one clear line."""
    study = make_study(tmp_path)
    (study / "readings.md").write_text("## scaling\n\nSchemes differ by less than a point.\n\n## kernels\n\nKernels cluster.\n")
    text = write_results(study).read_text()
    claim1, claim2 = text.index("## Claim 1"), text.index("## Claim 2")
    reading = text.index("Schemes differ by less than a point.")
    assert claim1 < reading < claim2
    assert text[:reading].rstrip().endswith("the numbers it cites are the generated ones above):")
    assert text.index("## Claim 3") < text.index("Kernels cluster.") < text.index("## Claim 4")
    assert text.count("**Reading** (written by hand") == 2
    assert write_results(study).read_text() == text
    (study / "readings.md").write_text("## claim one\n\ntext\n")
    result = run_cli("qbn.study", "report", str(study))
    assert result.returncode == 1
    assert "unknown section '## claim one'; readings are keyed by one of: scaling, signs, rewind, kernels, qbn, runs" in result.stderr
    assert (study / "RESULTS.md").read_text() == text   # a refused report leaves the last one as it was
