"""RESULTS.md, figures/ and numbers.json of a study directory, from its run directories alone:
the claims' typed results (qbn.study.claims), written by the one renderer (qbn.study.render),
each followed by its reading written by hand (qbn.study.readings, numbers cited by key), then the
runs: commands, commit, machine and wall times. Regenerating it from the same directories gives
the same bytes (nothing in it depends on when or where the report is written)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from ..errors import QbnError
from ..file_io import read_json, read_yaml, write_json, write_text
from ..rundir import RunDir
from .claims import sections
from .collect import Run, completed, damaged, read_study, unreadable
from .intervals import EQUIVALENCE_LEVEL, LEVEL
from .plan import STAGES, plan
from .provenance import STUDY_JSON
from .readings import READINGS, fill, read_readings
from .render import numbers, section_markdown, table_markdown
from .results import Row, Table

RESULTS = "RESULTS.md"
NUMBERS = "numbers.json"
READING_KEYS = ("scaling", "signs", "rewind", "kernels", "qbn", "runs")


def _portable(override: str, study_dir: Path) -> str:
    """An override as the report shows it: the study directory, however it was spelt, as $STUDY."""
    for root in sorted({str(study_dir.resolve()), str(study_dir)}, key=len, reverse=True):
        override = override.replace(root, "$STUDY")
    return override


def _overrides(run: Run) -> list[str]:
    if any(RunDir(run.dir).overrides_yaml.name in m for m in run.damaged):  # listed with the damaged runs
        return []
    path = RunDir(run.dir).overrides_yaml
    return [str(o) for o in OmegaConf.load(path)] if path.exists() else []


def planned_runs(study_dir: Path) -> dict[str, int]:
    """Runs per stage that the study's last invocation planned (its composed config in .study/);
    {} when that config is missing or no longer composes a plan."""
    cfg = read_yaml(study_dir / ".study" / "config.yaml")  # a damaged one is named, not read as absent
    if cfg is None:
        return {}
    try:
        return {stage: len(jobs) for stage, jobs in plan(cfg).items() if stage in cfg.stages}
    except Exception:  # noqa: BLE001 - a config of another qbn version: report without the plan
        return {}


def runs_section(study_dir: Path, runs: list[Run]) -> str:
    info = read_json(study_dir / STUDY_JSON) or {}
    lines = ["## Runs", ""]
    for inv in info.get("invocations", []):
        took = f", took {inv['wall_s'] / 60:.1f} min" if inv.get("wall_s") is not None else ", did not finish"
        lines.append(
            f"- `{inv['command']}` at commit {inv['commit']}, started {inv['started']}{took}, on {inv['machine']}"
        )
    planned = planned_runs(study_dir)
    table = Table(
        ["stage", "planned", "started", "completed", "failed or unfinished", "damaged", "wall time (sum of runs)"],
        [None] * 7,
    )
    for stage in STAGES:
        rs = [r for r in runs if r.stage == stage]
        if not rs and stage not in planned:
            continue
        done = completed(rs)
        wall = sum(r.get("wall_s") or 0 for r in done)
        unfinished = len(rs) - len(done) - len(unreadable(rs))  # a damaged summary.json is neither
        table.rows.append(
            Row(
                None,
                [
                    stage,
                    planned.get(stage, "-"),
                    len(rs),
                    len(done),
                    unfinished,
                    len(damaged(rs)),
                    f"{wall / 60:.1f} min",
                ],
            )
        )
    lines += [*([""] if info.get("invocations") else []), *table_markdown(table)]
    bad = damaged(runs)
    if bad:
        lines += [
            "",
            "Runs with a damaged file (what a damaged file holds is in no table; a run whose summary.json is "
            "damaged is neither completed nor unfinished; repair the file, or move the run directory away and run "
            "the study again to redo it):",
            "",
        ]
        lines += [
            f"- {_portable(str(r.dir), study_dir)}: " + "; ".join(_portable(m, study_dir) for m in r.damaged)
            for r in bad
        ]
    lines += [
        "",
        "Each run is `python -m qbn.train OVERRIDES paths.data_dir=$DATA hydra.run.dir=$STUDY/<stage>/<run>` "
        "($STUDY: the study directory; $DATA: the data directory of the machine it ran on):",
        "",
    ]
    for stage in STAGES:
        rs = [r for r in runs if r.stage == stage]
        if rs:
            lines += [f"<details><summary>{stage}: {len(rs)} commands</summary>", "", "```"]
            lines += [
                f"{r.job}: "
                + " ".join(
                    _portable(o, study_dir)
                    for o in _overrides(r)
                    if not o.startswith(("hydra.run.dir=", "paths.data_dir="))
                )
                for r in rs
            ]
            lines += ["```", "", "</details>", ""]
    return "\n".join(lines).rstrip()


def write_results(study_dir: str | Path) -> Path:
    """Write <study_dir>/RESULTS.md, figures/*.png and numbers.json (every citable number by key);
    return the RESULTS.md path. A reading with an unknown key or a stray number stops it (one
    QbnError line) before RESULTS.md or a figure is written."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise QbnError(f"{study_dir} is not a directory: give a study directory (outputs/study/<scale>)")
    runs = read_study(study_dir)
    if not runs:
        raise QbnError(f"{study_dir} holds no runs (<stage>/<run>/summary.json): run python -m qbn.study first")
    info = read_json(study_dir / STUDY_JSON) or {}  # the study's own files: a damaged one is named first
    planned = sum(planned_runs(study_dir).values())
    claims = sections(runs, study_dir)
    cited: dict[str, str] = {}
    for s in claims:
        cited.update(numbers(s))
    readings = {
        k: fill(t, cited, f"{study_dir / READINGS}, ## {k}")
        for k, t in read_readings(study_dir, list(READING_KEYS)).items()
    }
    write_json(study_dir / NUMBERS, dict(sorted(cited.items())))  # only once every reading checked
    parts = [
        f"# Study results ({info.get('scale', study_dir.name)} scale)",
        "",
        "Generated by `python -m qbn.study report` from the run directories alone; every number below is computed from "
        "summary.json, signs.json and kernels.json. "
        f"Intervals: {100 * LEVEL:.0f} % confidence intervals (Student's t over "
        f"seeds), except claim 1's equivalence test ({100 * EQUIVALENCE_LEVEL:.0f} %: two one-sided tests at 5 %); "
        "differences are paired by seed, in percentage points. An interval is printed only when it has a width: "
        "'(all 3 seeds equal)' says the seeds gave one value.",
        "",
    ]
    done = len(completed(runs))
    if planned > done:
        parts += [
            f"**Partial: {done} of the {planned} planned runs are complete** (the stage table under Runs); every "
            "table and verdict below is computed from the completed runs only. Run the same study command again "
            "to finish it.",
            "",
        ]
    if damaged(runs):
        parts += [
            f"**Damaged: {len(damaged(runs))} runs have a damaged file**, whose contents are not counted (listed "
            "by path under Runs).",
            "",
        ]
    for s in claims:
        parts += [section_markdown(study_dir, s), ""]
        if s.key in readings:
            parts += [
                f"**Reading** (written by hand, in {READINGS} of the study directory; every number in it is a "
                "generated one, cited by key):",
                "",
                readings[s.key],
                "",
            ]
    parts += [runs_section(study_dir, runs), ""]
    if "runs" in readings:
        parts += [f"**Reading** (written by hand, in {READINGS} of the study directory):", "", readings["runs"], ""]
    path = study_dir / RESULTS
    write_text(path, "\n".join(parts).rstrip() + "\n")
    return path
