"""The committed experiments/readings.md against a study shaped like scale=cpu's plan (hand-made
run directories, one per planned run, no training): every key it cites is one the report
generates, and it states no number of its own."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from qbn.config import CONFIG_DIR
from qbn.schema import compose_config
from qbn.study import keys as K
from qbn.study import render
from qbn.study.plan import plan
from qbn.study.readings import PLACEHOLDER, stray_numbers
from qbn.study.results_page import write_results

ROOT = Path(__file__).resolve().parents[1]


def _summary(job, rng: random.Random) -> dict:
    opts = dict(o.split("=", 1) for o in job.overrides)
    seed, epochs = int(opts["seed"]), int(opts.get("trainer.max_epochs", 4))
    scheme = "fp" if opts.get("binary") == "fp" else opts.get("scaling", "xnor")
    s = {
        "status": "completed",
        "seed": seed,
        "max_epochs": epochs,
        "global_step": 79 * epochs,
        "optimizer": opts["optimizer"],
        "scheduler": opts["scheduler"],
        "scaling": scheme,
        "binary": scheme != "fp",
        "test/acc": 0.85 + rng.uniform(-0.01, 0.01),
        K.VAL_ACC: 0.85 + rng.uniform(-0.01, 0.01),
        "wall_s": 1.0,
    }
    if job.stage in ("scaling", "signs") and scheme != "fp":
        s.update({K.e_frac(q): 0.3 + rng.uniform(0, 0.1) for q in K.QUANTILES})
        s.update({K.e_frac(q, True): 0.6 + rng.uniform(0, 0.1) for q in K.QUANTILES})
        s.update(
            {
                K.EVER_FLIPPED: 0.25,
                K.E_EPOCH.format(q="0.90"): 1,
                K.ENTROPY: 8.5 + rng.uniform(0, 0.1),
                K.ENTROPY_MM: 8.52 + rng.uniform(0, 0.1),
                K.NULL_ENTROPY_MM: 8.98,
                K.TOP8: 0.1,
                K.NULL_TOP8: 0.017,
            }
        )
    if job.export:
        bits = int(opts[K.QBN_BITS])
        s.update(
            {
                K.FILE_ACC: 0.85 + rng.uniform(-0.01, 0.01),
                K.FILE_BITS: 1.0 if bits == 9 else bits / 9 + 0.001,
                K.FILE_BYTES: 1000,
            }
        )
    return s


def cpu_shaped_study(root: Path) -> Path:
    cfg = compose_config(CONFIG_DIR / "study", "study", [f"dir={root / 'study'}", "scale=cpu"])
    rng = random.Random(0)
    for jobs in plan(cfg).values():
        for job in jobs:
            run = root / "study" / job.key
            (run / ".hydra").mkdir(parents=True)
            (run / ".hydra" / "overrides.yaml").write_text("".join(f"- '{o}'\n" for o in job.overrides))
            summary = _summary(job, rng)
            (run / "summary.json").write_text(json.dumps(summary))
            if K.E_EPOCH.format(q="0.90") in summary:  # a trunk's stable-share curve, as the sign instrument writes it
                steps = summary["global_step"]
                curve = {"steps": [0, steps // 2, steps], "all": [0.7, 0.9, 1.0]}
                signs = {"steps": {"total_steps": steps, "overall": {K.STABLE_SHARE: curve}}}
                (run / "signs.json").write_text(json.dumps(signs))
    return root / "study"


def test_committed_readings_cite_only_generated_keys_and_no_number_of_their_own(tmp_path, monkeypatch):
    readings = (ROOT / "experiments" / "readings.md").read_text()
    assert stray_numbers(readings) == []
    study = cpu_shaped_study(tmp_path)
    (study / "readings.md").write_text(readings)
    monkeypatch.setattr(render, "draw", lambda study_dir, fig: f"![{fig.name}]")  # figures are not what this tests
    text = write_results(study).read_text()
    cited = json.loads((study / "numbers.json").read_text())
    keys = {m.group(1) for m in PLACEHOLDER.finditer(readings)}
    assert keys and keys <= set(cited)
    assert not re.search(r"\{claim", text)
    assert cited["claim2.rewind.e8.k_0.25.freeze.minus_trunk"] in text
