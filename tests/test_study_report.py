"""`python -m qbn.study report` on hand-made run directories (no training; the keys are those of
qbn.study.keys): every number in RESULTS.md equals a direct computation from the runs' files,
no interval of zero width is printed as one, readings cite numbers by key only, the report
regenerates byte for byte, and it never changes a run directory."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import statistics
from pathlib import Path

import pytest

from qbn.errors import QbnError
from qbn.study import keys as K
from qbn.study.claims import sections
from qbn.study.collect import read_study
from qbn.study.readings import stray_numbers
from qbn.study.render import numbers
from qbn.study.results_page import write_results
from qbn.testing.runs import run_cli

T_2 = 4.302652729911275  # Student's t, 97.5 % quantile, 2 degrees of freedom (95 % interval of 3 seeds)
T_4_90 = 2.131846786326649  # Student's t, 95 % quantile, 4 degrees of freedom (90 % interval of 5 seeds)
SEEDS5 = (0, 1, 2, 3, 4)
SEEDS = (0, 1, 2)
XNOR = {"batch": (0.900, 0.910, 0.905, 0.895, 0.908), "none": (0.850, 0.860, 0.855, 0.852, 0.858)}
# scheme minus xnor, by norm and seed
DELTA = {
    "batch": {
        "none": (0.001, -0.002, 0.002, 0.0, -0.001),
        "learnable": (0.002, 0.001, -0.001, 0.0, 0.001),
        "lq": (-0.001, 0.0, 0.001, 0.002, -0.002),
        "fp": (0.03, 0.03, 0.031, 0.029, 0.03),
    },
    "none": {
        "none": (-0.030, -0.035, -0.032, -0.031, -0.029),
        "learnable": (0.002, 0.001, -0.001, 0.0, 0.001),
        "lq": (0.010, -0.012, 0.020, -0.015, 0.0),
    },
}
TRUNK12 = (0.920, 0.925, 0.930)
# rewound runs: minus trunk by (length, arm, signs) and seed
REWIND = {
    (4, "init", "k0.125"): (-0.05, -0.06, -0.055),
    (4, "init", "k0.5"): (-0.002, -0.001, -0.003),
    (4, "init", "k0"): (-0.30, -0.31, -0.29),
    (4, "init", "random"): (-0.29, -0.30, -0.28),
    (4, "init", "final"): (0.003, 0.002, 0.004),
    (4, "freeze", "k0.125"): (-0.004, -0.003, -0.005),
    (4, "freeze", "k0.5"): (0.0, 0.001, -0.001),
    (12, "init", "k0.125"): (-0.001, -0.002, -0.0015),
    (12, "freeze", "k0.125"): (-0.02, -0.03, -0.025),
    (12, "freeze", "k0.5"): (-0.001, 0.0, -0.002),
}
# qbn: (name, bits, distill): file accuracy minus the BWN, val accuracy, bits per binarized weight
QBN = {
    ("control", 9, 0.0): ((0.005, 0.006, 0.004), 0.870, 1.0),
    ("control", 9, 0.5): ((0.007, 0.008, 0.006), 0.871, 1.0),
    ("topk", 4, 0.0): ((-0.015, -0.019, -0.018), 0.860, 0.445),
    ("learned", 4, 0.0): ((0.001, 0.003, -0.001), 0.880, 0.445),
    ("topk", 4, 0.5): ((0.006, 0.007, 0.004), 0.850, 0.445),
    ("topk", 6, 0.0): ((0.004, 0.005, 0.003), 0.868, 0.668),
}


def _write(
    run: Path, summary: dict, options: list[str], signs: dict | None = None, kernels: dict | None = None
) -> Path:
    (run / ".hydra").mkdir(parents=True, exist_ok=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in [f"seed={summary['seed']}", *options]))
    (run / "summary.json").write_text(
        json.dumps(
            {
                "status": "completed",
                "wall_s": 10.0,
                "optimizer": "adam",
                "scheduler": "cosine",
                "binary": True,
                "scaling": "xnor",
                **summary,
            }
        )
    )
    if signs:
        (run / "signs.json").write_text(json.dumps(signs))
    if kernels:
        (run / "kernels.json").write_text(json.dumps(kernels))
    return run


def _sign_keys(epochs: int, seed: int, norm: str) -> dict:
    """E_q as shares of steps: the 4-epoch BatchNorm runs give one value on every seed."""
    if epochs == 4 and norm == "batch":
        frac = 0.25
    elif epochs == 4:
        frac = 0.30 + 0.01 * seed
    else:
        frac = 0.40 + 0.01 * seed
    return {
        K.e_frac("0.90"): frac,
        K.e_frac("0.95"): frac + 0.1,
        K.e_frac("0.99"): frac + 0.3,
        K.e_frac("0.90", True): 0.6 + 0.01 * seed,
        K.e_frac("0.95", True): 0.7,
        K.e_frac("0.99", True): 0.9,
        K.EVER_FLIPPED: 0.25 + 0.005 * seed,
        K.E_EPOCH.format(q="0.90"): 1,
        "global_step": 79 * epochs,
    }


def _kernel_keys(epochs: int, seed: int) -> dict:
    h = 8.6 + 0.01 * seed if epochs == 4 else 7.8 + 0.02 * seed
    return {
        K.ENTROPY: h,
        K.ENTROPY_MM: h + 0.01,
        K.NULL_ENTROPY_MM: 8.98 + 0.001 * seed,
        K.TOP8: 0.12,
        K.NULL_TOP8: 0.017,
    }


def _signs_json(epochs: int) -> dict:
    steps = [79 * e for e in range(epochs + 1)]
    curve = {"steps": steps, "all": [0.7 + 0.3 * e / epochs for e in range(epochs + 1)]}
    # the shape the sign instrument writes (qbn.signs.step_timing under "steps"/"overall")
    return {"overall": {"E_0.90": 1}, K.STEP_TIMING: {"total_steps": steps[-1], "overall": {K.STABLE_SHARE: curve}}}


def _kernels_json(epochs: int, seed: int) -> dict:
    final = _kernel_keys(epochs, seed)
    return {
        "overall": {"entropy": final[K.ENTROPY]},
        "history": {
            str(e): {"entropy": 9.0 - (9.0 - final[K.ENTROPY]) * e / epochs, "top8": 0.016 + 0.1 * e / epochs}
            for e in range(epochs + 1)
        },
    }


def make_study(root: Path) -> Path:
    study = root / "study"
    for norm, slug in (("batch", "bn"), ("none", "nobn")):
        for scheme in ("none", "xnor", "learnable", "lq", "fp"):
            if scheme == "fp" and norm != "batch":
                continue
            for seed in SEEDS5:
                acc = XNOR[norm][seed] + (DELTA[norm][scheme][seed] if scheme != "xnor" else 0.0)
                opts = [f"{K.NORM}={norm}"] if norm != "batch" else []
                summary = {"seed": seed, "scaling": scheme, "binary": scheme != "fp", "max_epochs": 4, "test/acc": acc}
                signs = kernels = None
                if scheme == "xnor":
                    summary.update(_sign_keys(4, seed, norm))
                    signs = _signs_json(4)
                    if norm == "batch":
                        opts += ["rewind=trunk"]
                        summary.update(_kernel_keys(4, seed))
                        kernels = _kernels_json(4, seed)
                _write(study / "scaling" / f"adam_cosine-{slug}-{scheme}-s{seed}", summary, opts, signs, kernels)
    for seed in SEEDS:
        _write(
            study / "signs" / f"adam_cosine-e12-s{seed}",
            {
                "seed": seed,
                "max_epochs": 12,
                "test/acc": TRUNK12[seed],
                **_sign_keys(12, seed, "batch"),
                **_kernel_keys(12, seed),
            },
            ["rewind=trunk", "trainer.max_epochs=12"],
            _signs_json(12),
            _kernels_json(12, seed),
        )
    for (epochs, arm, signs), deltas in REWIND.items():
        for seed in SEEDS:
            trunk = XNOR["batch"][seed] if epochs == 4 else TRUNK12[seed]
            share = signs[1:]
            if arm == "freeze":
                opts = ["rewind=freeze", f"{K.FREEZE_AT}=share:{share}"]
            else:
                spec = {"k0": "init", "random": "random", "final": "final"}.get(signs, f"share:{share}")
                tdir = study / (
                    f"scaling/adam_cosine-bn-xnor-s{seed}" if epochs == 4 else f"signs/adam_cosine-e12-s{seed}"
                )
                opts = [
                    "rewind=rewound",
                    f"{K.REWIND_TRUNK}={tdir}",
                    f"{K.REWIND_SIGNS}={spec}",
                    f"{K.REWIND_WEIGHTS}=init",
                ]
            _write(
                study / "rewind" / f"e{epochs}-s{seed}-{arm}-{signs}",
                {"seed": seed, "max_epochs": epochs, "test/acc": trunk + deltas[seed]},
                opts,
            )
    for (method, bits, weight), (deltas, val, bpw) in QBN.items():
        for seed in SEEDS:
            bwn = study / "scaling" / f"adam_cosine-bn-xnor-s{seed}"
            opts = [
                f"{K.QBN_BITS}={bits}",
                f"{K.QBN_METHOD}={'topk' if method == 'control' else method}",
                f"{K.QBN_FROM}={bwn}",
            ]
            if weight:
                opts.append(f"{K.DISTILL_WEIGHT}={weight:g}")
            _write(
                study / "qbn" / f"e4-f1-s{seed}-{method}-d{weight:g}-n{bits}",
                {
                    "seed": seed,
                    "max_epochs": 1,
                    "test/acc": 0.0,
                    K.VAL_ACC: val + 0.001 * seed,
                    K.FILE_ACC: XNOR["batch"][seed] + deltas[seed],
                    K.FILE_BITS: bpw,
                    K.FILE_BYTES: 1000 + bits,
                },
                opts,
            )
    (study / "study.json").write_text(
        json.dumps(
            {
                "scale": "cpu",
                "invocations": [
                    {
                        "command": "python -m qbn.study scale=cpu",
                        "commit": "abc123",
                        "machine": "test machine",
                        "started": "then",
                    }
                ],
            }
        )
    )
    return study


def _ci(values, t=T_2):
    m, s = statistics.fmean(values), statistics.stdev(values)
    h = t * s / math.sqrt(len(values))
    return m, m - h, m + h


def _pp(x):
    return f"{100 * x:+.2f}"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def cited(study):
    out = {}
    for s in sections(read_study(study), study):
        out.update(numbers(s))
    return out


def test_claim1_is_an_equivalence_test_per_norm_on_90_percent_intervals(cited):
    m, lo, hi = _ci(DELTA["none"]["none"], T_4_90)
    assert cited["claim1.adam_cosine.none.nobn.minus_xnor"] == f"{_pp(m)} [{_pp(lo)}, {_pp(hi)}]"
    assert cited["claim1.adam_cosine.none.nobn.verdict"] == "did not hold"  # wholly below -1 point
    assert cited["claim1.adam_cosine.lq.nobn.verdict"] == "inconclusive"  # straddles -1 point
    assert cited["claim1.adam_cosine.bn.verdict"] == "held"  # all three within ±1
    assert cited["claim1.adam_cosine.nobn.verdict"] == "did not hold"
    assert cited["claim1.adam_cosine.none.bn.seeds"] == "5"


def test_claim1_columns_judge_the_schemes_the_study_ran(tmp_path):
    """scale=cpu and smoke run only none and xnor: a column's verdict is over those (it read 'inconclusive'
    for want of learnable and lq, even where none was held or did not hold)."""
    study = make_study(tmp_path)
    for run in (study / "scaling").iterdir():
        if "-learnable-" in run.name or "-lq-" in run.name:
            shutil.rmtree(run)
    cited = {}
    for sec in sections(read_study(study), study):
        cited.update(numbers(sec))
    assert cited["claim1.adam_cosine.none.bn.verdict"] == "held"
    assert cited["claim1.adam_cosine.bn.verdict"] == "held"
    assert cited["claim1.adam_cosine.none.nobn.verdict"] == "did not hold"
    assert cited["claim1.adam_cosine.nobn.verdict"] == "did not hold"
    assert "learnable" not in cited.get("claim1.adam_cosine.learnable.bn.verdict", "")


def test_claim2_sign_timing_as_shares_and_no_zero_width_interval(cited):
    assert cited["claim2.signs.adam_cosine.bn.e4.E_0.90_frac"] == "0.250 (all 5 seeds equal)"
    m, lo, hi = _ci([0.40, 0.41, 0.42])
    assert cited["claim2.signs.adam_cosine.bn.e12.E_0.90_frac"] == f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
    assert cited["claim2.signs.adam_cosine.bn.e4.verdict"] == "held"  # all equal below 0.5: its interval is the value
    assert cited["claim2.signs.adam_cosine.bn.e12.verdict"] == "held"
    assert cited["claim2.signs.adam_cosine.bn.e4.verdict_flipped"] == "did not hold"  # 0.60-0.64 of the steps


def test_claim2_rewinding_grid_in_shares_with_the_smallest_k_per_arm(cited):
    m, lo, hi = _ci(REWIND[(4, "init", "k0.125")])
    assert cited["claim2.rewind.e4.k_0.125.init.minus_trunk"] == f"{_pp(m)} [{_pp(lo)}, {_pp(hi)}]"
    assert cited["claim2.rewind.e4.init.smallest_k"] == "K = 1/2"
    assert cited["claim2.rewind.e4.freeze.smallest_k"] == "K = 1/8"
    assert cited["claim2.rewind.e12.init.smallest_k"] == "K = 1/8"
    assert cited["claim2.rewind.e12.freeze.smallest_k"] == "K = 1/2"
    assert cited["claim2.rewind.e4.k_0.init.verdict"] == "(control)"
    assert cited["claim2.rewind.e4.random.init.verdict"] == "(control)"
    m, _, _ = _ci([a - b for a, b in zip(REWIND[(4, "init", "k0.5")], REWIND[(4, "init", "random")], strict=True)])
    assert cited["claim2.rewind.e4.k_0.5.init.minus_random"].startswith(_pp(m))
    assert (
        cited["claim2.rewind.e4.k_0.125.init.stable_at_k"] == f"{100 * (0.7 + 0.3 * 0 / 4):.1f}"
    )  # step 39.5 of 316: epoch 0


def test_claim3_against_the_null_and_the_length_it_was_reached_at(cited):
    diffs = [(7.8 + 0.02 * s + 0.01) - (8.98 + 0.001 * s) for s in SEEDS]
    m, lo, hi = _ci(diffs)
    assert cited["claim3.adam_cosine.bn.xnor.e12.minus_null"] == f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    assert cited["claim3.adam_cosine.bn.xnor.e12.verdict"] == "held"
    assert cited["claim3.adam_cosine.bn.xnor.e4.verdict"] == "did not hold"  # about -0.37 bit: not half a bit below
    assert cited["claim3.adam_cosine.bn.reached"] == "reached at 12 epochs (948 steps)"


def test_claim4_every_difference_to_the_matched_control_and_the_goal_chosen_on_validation(cited):
    d = [a - b for a, b in zip(QBN[("topk", 4, 0.5)][0], QBN[("control", 9, 0.5)][0], strict=True)]
    m, lo, hi = _ci(d)
    assert (
        cited["claim4.e4.f1.topk.d0.5.n4.minus_control"] == f"{_pp(m)} [{_pp(lo)}, {_pp(hi)}]"
    )  # its own teacher's control
    d = [a - b for a, b in zip(QBN[("learned", 4, 0.0)][0], QBN[("control", 9, 0.0)][0], strict=True)]
    m, lo, hi = _ci(d)
    assert cited["claim4.e4.f1.learned.d0.n4.minus_control"] == f"{_pp(m)} [{_pp(lo)}, {_pp(hi)}]"
    # the best on validation is learned (topk distilled is better on test, worse on validation)
    assert cited["claim4.e4.f1.goal.verdict"] == "held"
    assert cited["claim4.e4.f1.goal.detail"] == f"{_pp(m)} [{_pp(lo)}, {_pp(hi)}]"
    assert cited["claim4.e4.f1.topk.d0.n4.verdict"] == "did not hold"
    assert cited["claim4.e4.f1.control.d0.bits"] == "1.0000"


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "figures" not in p.parts and p.name not in ("RESULTS.md", "numbers.json")
    }


ZERO_WIDTH = re.compile(r"\[([+-]?\d+(?:\.\d+)?), \1\]")


@pytest.mark.slow  # a subprocess or a whole report (seconds); CI's slow step runs it
def test_results_md_regenerates_byte_for_byte_without_zero_width_intervals(tmp_path):
    study = make_study(tmp_path)
    before = _digest(study)
    path = write_results(study)
    text = path.read_text()
    assert not ZERO_WIDTH.search(text), ZERO_WIDTH.search(text).group()
    assert "0.250 (all 5 seeds equal)" in text
    assert "- adam, cosine, BatchNorm: **held**" in text and "- adam, cosine, no BatchNorm: **did not hold**" in text
    assert "`python -m qbn.study scale=cpu` at commit abc123, started then, did not finish" in text
    for fig in (
        "claim1_scaling.png",
        "claim2_stable_share.png",
        "claim2_signs_lengths.png",
        "claim2_rewind.png",
        "claim2_rewind_lengths.png",
        "claim3_kernels.png",
        "claim4_subbit.png",
    ):
        assert (study / "figures" / fig).stat().st_size > 1000, fig
        assert f"figures/{fig}" in text
    cited = json.loads((study / "numbers.json").read_text())
    assert cited["claim2.rewind.e4.init.smallest_k"] == "K = 1/2"
    figures = {p.name: p.read_bytes() for p in (study / "figures").iterdir()}
    result = run_cli("qbn.study", "report", str(study))
    assert result.returncode == 0, result.stderr
    assert path.read_text() == text
    assert {p.name: p.read_bytes() for p in (study / "figures").iterdir()} == figures
    assert _digest(study) == before  # the run directories (and study.json) are untouched


@pytest.mark.slow  # a subprocess or a whole report (seconds); CI's slow step runs it
def test_report_of_a_folder_without_runs_is_one_clear_line(tmp_path):
    result = run_cli("qbn.study", "report", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"qbn: {tmp_path} holds no runs (<stage>/<run>/summary.json): run python -m qbn.study first"
    ]


def test_a_partial_study_says_so_with_its_planned_runs(tmp_path):
    """With the study's composed config in .study/ (as `python -m qbn.study` leaves it), the report
    counts the planned runs per stage and says, on top, how many are complete."""
    from omegaconf import OmegaConf

    from qbn.config import CONFIG_DIR
    from qbn.schema import compose_config
    from qbn.study.plan import plan

    study = make_study(tmp_path)
    cfg = compose_config(CONFIG_DIR / "study", "study", [f"dir={study}", "scale=cpu"])
    (study / ".study").mkdir()
    OmegaConf.save(cfg, study / ".study" / "config.yaml")
    rewound = study / "rewind" / "e4-s0-init-k0.5"  # the machine's paths stay out of the report
    (rewound / ".hydra" / "overrides.yaml").write_text(
        "- seed=0\n- paths.data_dir=/some/machine/data\n"
        f"- rewind.trunk={study.resolve()}/scaling/adam_cosine-bn-xnor-s0\n"
    )
    text = write_results(study).read_text()
    assert "/some/machine" not in text and str(tmp_path) not in text
    assert "e4-s0-init-k0.5: seed=0 rewind.trunk=$STUDY/scaling/adam_cosine-bn-xnor-s0" in text
    done = len(list(study.glob("*/*/summary.json")))
    planned = {stage: len(jobs) for stage, jobs in plan(cfg).items()}
    assert f"**Partial: {done} of the {sum(planned.values())} planned runs are complete**" in text
    assert f"| scaling | {planned['scaling']} | 45 | 45 | 0 |" in text


@pytest.mark.slow  # a subprocess or a whole report (seconds); CI's slow step runs it
def test_readings_cite_numbers_by_key_and_follow_their_claim(tmp_path):
    study = make_study(tmp_path)
    (study / "readings.md").write_text(
        "## scaling\n\nWithout BatchNorm, no scaling minus xnor is {claim1.adam_cosine.none.nobn.minus_xnor} points "
        "(claim 1, its column: {claim1.adam_cosine.nobn.verdict}).\n\n"
        "## rewind\n\nAt four epochs, S_K from K = {claim2.rewind.e4.init.smallest_k} on keeps the trunk's accuracy: "
        "{claim2.rewind.e4.k_0.5.init.minus_trunk}; top-8, E_0.90 and n = 4 are names.\n"
    )
    text = write_results(study).read_text()
    cited = json.loads((study / "numbers.json").read_text())
    diff = cited["claim1.adam_cosine.none.nobn.minus_xnor"]
    reading = f"no scaling minus xnor is {diff} points (claim 1, its column: did not hold)"
    assert reading in text
    assert text.index("## Claim 1") < text.index(reading) < text.index("## Claim 2")
    assert "from K = K = 1/2 on" in text and text.index("## Claim 2: primary") < text.index("from K = K = 1/2 on")
    assert text.count("**Reading** (written by hand") == 2
    assert write_results(study).read_text() == text

    for bad, message in (
        (
            "## scaling\n\nIt lost {claim1.adam_cosine.none.nobn.minus_xnr}.\n",
            "unknown key {claim1.adam_cosine.none.nobn.minus_xnr} "
            "(did you mean {claim1.adam_cosine.none.nobn.minus_xnor}?)",
        ),
        ("## rewind\n\nIt loses 0.2-0.8 points at every K.\n", "the number '0.2-0.8' is not cited by key"),
        (
            "## claim one\n\ntext\n",
            "unknown section '## claim one'; readings are keyed by one of: scaling, signs, rewind",
        ),
    ):
        (study / "readings.md").write_text(bad)
        result = run_cli("qbn.study", "report", str(study))
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
        assert (study / "RESULTS.md").read_text() == text  # a refused report leaves the last one as it was


@pytest.mark.parametrize(
    "text, stray",
    [
        ("E_0.90, top-8, ResNet-20, layer1, S_0 and epoch:1 are names", []),
        ("claim 2, Claims 3 and n = 4 are allowed; {claim2.x} is cited", []),
        ("it is 0.25 of training", ["0.25"]),
        ("-0.31 points", ["-0.31"]),
        ("K = 1/8 and 3x3 kernels over 4 epochs", ["1/8", "3x3", "4"]),
        ("n=4 without spaces", ["4"]),
        ("about 90 % of them.", ["90"]),
    ],
)
def test_stray_numbers_rule(text, stray):
    assert stray_numbers(text) == stray


def test_an_unknown_key_is_refused_in_the_function_too(study, cited):
    from qbn.study.readings import fill

    with pytest.raises(QbnError, match=r"here: unknown key \{claim9\}"):
        fill("{claim9}", cited, "here")


@pytest.mark.parametrize(
    "values, text",
    [
        ([0.25, 0.25, 0.25], "25.00 (all 3 seeds equal)"),
        ([0.25], "25.00 (1 seed)"),
        ([], "-"),
        (
            [0.25001, 0.25002, 0.25003],
            re.compile(r"25\.\d{3} \[(2[45]\.\d{3}), (25\.\d{3})\]"),
        ),  # more digits, not [25.00, 25.00]
        ([0.20, 0.25, 0.30], "25.00 [12.58, 37.42]"),
    ],
)
def test_the_renderer_never_prints_an_interval_of_zero_width(values, text):
    from qbn.study.intervals import estimate
    from qbn.study.render import estimate_text

    shown = estimate_text(estimate(values))
    if isinstance(text, str):
        assert shown == text
    else:
        m = text.fullmatch(shown)
        assert m and m.group(1) != m.group(2), shown
