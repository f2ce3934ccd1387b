"""The study's numbers from its run directories alone: one row per run (summary.json, signs.json,
kernels.json), and for each claim a table of estimates and verdicts (pure functions of the rows,
so tests build rows from hand-made run directories and compare with a direct computation)."""

from __future__ import annotations

import statistics
from pathlib import Path

from ..errors import DamagedFileError
from ..rundir import read_json, read_summary
from .plan import STAGES
from .stats import estimate, paired_difference
from .verdicts import (
    ACCURACY_MARGIN,
    ENTROPY_THRESHOLD,
    SETTLE_SHARE,
    UNTESTED,
    below,
    combine,
    equivalent,
    not_worse,
)

SCHEMES = ("none", "xnor", "learnable", "lq", "fp")
COMPARED = ("none", "learnable", "lq")   # claim 1: each against xnor
QUANTILES = ("E_0.90", "E_0.95", "E_0.99")
HEADLINE_K = 1          # claim 2: "the signs found at an early epoch": S_1
HEADLINE_BITS = 4       # claim 4: n = 4, 0.44 bit per weight (the smallest figure Sub-bit Networks report)


def _json(path: Path, damaged: list[str] | None = None) -> dict | None:
    """A JSON file of a run; None when absent, or when damaged (its message then added to `damaged`)."""
    try:
        data = read_json(path) if path.name != "summary.json" else read_summary(path.parent)
    except DamagedFileError as e:
        if damaged is None:
            raise
        damaged.append(str(e))
        return None
    return data if isinstance(data, dict) else None


def read_study(study_dir: str | Path) -> list[dict]:
    """One row per run directory <study>/<stage>/<job>/ that has a summary.json. A damaged file is
    never read as a missing one: the row's "damaged" lists each (a run whose summary.json is damaged
    is neither completed nor unfinished; the report lists it by path)."""
    study_dir = Path(study_dir)
    rows = []
    for stage in STAGES:
        d = study_dir / stage
        if not d.is_dir():
            continue
        for run in sorted(p for p in d.iterdir() if (p / "summary.json").exists()):
            problems: list[str] = []
            s = _json(run / "summary.json", problems) or {}
            signs, kernels = _json(run / "signs.json", problems), _json(run / "kernels.json", problems)
            rows.append({"stage": stage, "job": run.name, "dir": run, "summary": s, "damaged": problems,
                         "recipe": f"{s.get('optimizer')}_{s.get('scheduler')}",
                         "signs": (signs or {}).get("overall"), "signs_layers": (signs or {}).get("layers") or {},
                         "signs_epochs": (signs or {}).get("epochs"), "kernels": (kernels or {}).get("overall")})
    return rows


def completed(rows: list[dict], stage: str | None = None) -> list[dict]:
    return [r for r in rows if r["summary"].get("status") == "completed" and (stage is None or r["stage"] == stage)]


def damaged(rows: list[dict], stage: str | None = None) -> list[dict]:
    """Runs with a damaged file (summary.json, signs.json or kernels.json): never counted silently."""
    return [r for r in rows if r.get("damaged") and (stage is None or r["stage"] == stage)]


def unreadable(rows: list[dict], stage: str | None = None) -> list[dict]:
    """Runs whose summary.json is damaged: neither completed nor unfinished."""
    return [r for r in damaged(rows, stage) if not r["summary"]]


def find_run(study_dir: Path, path: str | None) -> Path | None:
    """A run directory recorded in a summary, also after the study directory moved."""
    if not path:
        return None
    p = Path(path)
    for candidate in (p, Path(study_dir) / p.parent.name / p.name):
        if (candidate / "summary.json").exists():
            return candidate
    return None


def _by_seed(rows: list[dict], key) -> dict:
    return {r["summary"].get("seed"): key(r) for r in rows}


def _acc(r: dict):
    return r["summary"].get("test/acc")


# ---- claim 1: scaling ---------------------------------------------------------------------------

def scaling_table(rows: list[dict]) -> dict[str, dict]:
    """{recipe: {"schemes": {scheme: {acc, diff, verdict}}, "verdict"}}: test accuracy per scheme,
    each scheme's paired-by-seed difference to xnor, and claim 1's verdict per recipe."""
    out = {}
    runs = completed(rows, "scaling")
    for recipe in sorted({r["recipe"] for r in runs}):
        by_scheme = {s: _by_seed([r for r in runs if r["recipe"] == recipe and r["summary"].get("scaling") == s], _acc)
                     for s in SCHEMES}
        schemes = {}
        for s, accs in by_scheme.items():
            if not accs:
                continue
            diff = paired_difference(accs, by_scheme["xnor"]) if s != "xnor" else None
            schemes[s] = {"acc": estimate(accs.values()), "diff": diff, "seeds": sorted(accs),
                          "verdict": equivalent(diff, ACCURACY_MARGIN) if s in COMPARED and diff is not None else None}
        verdicts = [schemes[s]["verdict"] for s in COMPARED if s in schemes]
        out[recipe] = {"schemes": schemes, "verdict": combine(verdicts) if len(verdicts) == len(COMPARED) else "inconclusive",
                       "epochs": max(r["summary"].get("max_epochs") or 0 for r in runs if r["recipe"] == recipe)}
    return out


# ---- claim 2: when signs settle -------------------------------------------------------------------

def settle_table(rows: list[dict]) -> dict[str, dict]:
    """{"adam, cosine, 8 epochs": {E_q estimates, share (E_0.90 / epochs), verdict, d_e curves, layers}}
    over the binary xnor runs of the scaling and signs stages that have signs.json."""
    out: dict[str, dict] = {}
    runs = [r for r in completed(rows) if r["stage"] in ("scaling", "signs") and r["signs"]
            and r["summary"].get("scaling") == "xnor"]
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        s = r["summary"]
        groups.setdefault((s.get("optimizer"), s.get("scheduler"), int(s.get("max_epochs") or 0)), []).append(r)
    for (opt, sched, epochs), rs in sorted(groups.items()):
        g = {"epochs": epochs, "seeds": sorted(r["summary"].get("seed") for r in rs),
             **{q: estimate(r["signs"].get(q) for r in rs) for q in QUANTILES},
             "share": estimate(r["signs"]["E_0.90"] / epochs for r in rs),
             "changed": estimate(r["signs"].get("changed_from_init") for r in rs),
             "curves": [(r["signs_epochs"], r["signs"]["d_e"]) for r in rs]}
        # stable_fraction at epoch 0: the share of signs that never flipped (L_i = 0)
        never = [r["signs"]["stable_fraction"][0] for r in rs
                 if r["signs"].get("stable_fraction") and r["signs_epochs"][:1] == [0]]
        g["never_flipped"] = estimate(never) if len(never) == len(rs) else None
        g["verdict"] = (UNTESTED if g["never_flipped"] is not None and min(never) >= 0.90
                        else below(g["share"], SETTLE_SHARE))
        layers: dict[str, list] = {}
        for r in rs:
            for name, d in r["signs_layers"].items():
                layers.setdefault(name, []).append(d.get("E_0.95"))
        g["layers"] = {name: statistics.fmean(v) for name, v in layers.items() if None not in v}
        out[f"{opt}, {sched}, {epochs} epochs"] = g
    return out


# ---- claim 2: primary sub-networks ---------------------------------------------------------------

def _order(g: dict) -> tuple:
    rank = {"epoch": 0, "stable": 1, "random": 2, "final": 3}.get(g["mode"], 4)
    return str(g["weights"]), rank, -1 if g["K"] is None else int(g["K"])


def rewind_table(rows: list[dict], study_dir: Path) -> dict:
    """Rewound runs per (weights, signs): accuracy, paired difference to the trunk (same seed) and
    to the random-signs control (same seed and weights), the share of signs final at K."""
    runs = completed(rows, "rewind")
    trunks: dict = {}
    for r in runs:
        seed = r["summary"].get("seed")
        if seed not in trunks:
            d = find_run(study_dir, r["summary"].get("rewind/trunk"))
            ts = _json(d / "summary.json", []) if d else None   # damaged: listed with its own row
            sj = _json(d / "signs.json", []) if d else None
            trunks[seed] = {"acc": (ts or {}).get("test/acc") if (ts or {}).get("status") == "completed" else None,
                            "d_e": dict(zip(sj["epochs"], sj["overall"]["d_e"], strict=True)) if sj and sj.get("overall") else {}}
    trunk_acc = {s: t["acc"] for s, t in trunks.items() if t["acc"] is not None}
    groups: dict[tuple, dict] = {}
    for r in runs:
        s = r["summary"]
        g = groups.setdefault((s.get("rewind/weights"), s.get("rewind/signs")), {
            "weights": s.get("rewind/weights"), "signs": s.get("rewind/signs"), "mode": s.get("rewind/mode"),
            "K": s.get("rewind/K"), "acc": {}, "fixed_share": s.get("rewind/fixed_share")})
        g["acc"][s.get("seed")] = s.get("test/acc")
    for g in groups.values():
        g["estimate"] = estimate(g["acc"].values())
        g["vs_trunk"] = paired_difference(g["acc"], trunk_acc)
        random = groups.get((g["weights"], "random"))
        g["vs_random"] = paired_difference(g["acc"], random["acc"]) if random and g["signs"] != "random" else None
        k = g["K"]
        finals = [1 - trunks[seed]["d_e"][k] for seed in g["acc"] if k is not None and k in trunks.get(seed, {}).get("d_e", {})]
        g["final_at_K"] = statistics.fmean(finals) if finals else None
        # random signs are the control expected to lose accuracy: no verdict of their own
        g["verdict"] = "(control)" if g["mode"] == "random" else not_worse(g["vs_trunk"], ACCURACY_MARGIN)
    ordered = sorted(groups.values(), key=_order)
    headline = {g["weights"]: g["verdict"] for g in ordered if g["mode"] == "epoch" and g["K"] == HEADLINE_K}
    return {"trunk": estimate(trunk_acc.values()), "trunk_acc": trunk_acc, "groups": ordered, "headline": headline,
            "verdict": headline.get("init", "inconclusive")}


# ---- claim 3: kernels -------------------------------------------------------------------------------

def kernel_table(rows: list[dict]) -> dict[str, dict]:
    """Per recipe, over the scaling stage's xnor runs: entropy and top-1/8/32 coverage estimates."""
    out = {}
    runs = [r for r in completed(rows, "scaling") if r["kernels"] and r["summary"].get("scaling") == "xnor"]
    for recipe in sorted({r["recipe"] for r in runs}):
        rs = [r for r in runs if r["recipe"] == recipe]
        e = estimate(r["kernels"]["entropy"] for r in rs)
        out[recipe] = {"entropy": e, "seeds": sorted(r["summary"].get("seed") for r in rs),
                       **{k: estimate(r["kernels"][k] for r in rs) for k in ("top1", "top8", "top32")},
                       "uniform": rs[0]["kernels"].get("uniform", {}),
                       "coverage": [r["kernels"].get("coverage") for r in rs],
                       "verdict": below(e, ENTROPY_THRESHOLD)}
    return out


# ---- claim 4: QBN -----------------------------------------------------------------------------------

def qbn_table(rows: list[dict], study_dir: Path) -> dict:
    """Per (codebook, n): accuracy of the packed file, bits per binarized weight measured from the
    file, file bytes, and the paired-by-seed difference to the BWN it was fine-tuned from."""
    runs = [r for r in completed(rows, "qbn") if r["summary"].get("export/test_acc") is not None]
    bwn: dict = {}
    groups: dict[tuple, dict] = {}
    for r in runs:
        s = r["summary"]
        q = s.get("qbn") or {}
        seed = s.get("seed")
        if seed not in bwn:
            d = find_run(study_dir, q.get("from_ckpt"))
            bs = _json(d / "summary.json", []) if d else None
            if bs and bs.get("status") == "completed":
                bwn[seed] = bs.get("test/acc")
        g = groups.setdefault((q.get("codebook"), q.get("bits")), {"codebook": q.get("codebook"), "bits": q.get("bits"),
                                                                 "acc": {}, "bpw": [], "bytes": []})
        g["acc"][seed] = s["export/test_acc"]
        g["bpw"].append(s.get("export/bits_per_binarized_weight"))
        g["bytes"].append(s.get("export/file_bytes"))
    for g in groups.values():
        g["estimate"] = estimate(g["acc"].values())
        g["bits_per_weight"] = statistics.fmean(g["bpw"]) if None not in g["bpw"] else None
        g["file_bytes"] = max(g["bytes"]) if None not in g["bytes"] else None
        g["vs_bwn"] = paired_difference(g["acc"], bwn)
        g["verdict"] = not_worse(g["vs_bwn"], ACCURACY_MARGIN)
    ordered = sorted(groups.values(), key=lambda g: (str(g["codebook"]), -int(g["bits"])))
    head = next((g for g in ordered if g["codebook"] == "per_layer" and g["bits"] == HEADLINE_BITS), None)
    fp = [r for r in completed(rows, "scaling") if r["summary"].get("scaling") == "fp"]
    return {"groups": ordered, "bwn": estimate(bwn.values()), "bwn_acc": bwn,
            "fp": estimate(_acc(r) for r in fp if r["recipe"] == (runs[0]["recipe"] if runs else None)),
            "verdict": head["verdict"] if head else "inconclusive"}
