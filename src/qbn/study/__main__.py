"""`python -m qbn.study scale=smoke|cpu|full [overrides]` runs (or resumes) the study;
`python -m qbn.study plan scale=cpu [--runs] [overrides]` prints its planned runs and estimated CPU
time (nothing runs); `python -m qbn.study report DIR` rebuilds DIR/RESULTS.md and DIR/figures/
from its run directories."""

from __future__ import annotations

import json
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from ..config import CONFIG_DIR, check_choices
from ..errors import ConfigError, QbnError, command
from ..schema import check_fields, compose_config
from .collect import damaged, read_study
from .plan_cost import plan_report
from .results_page import write_results
from .runner import Runner


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR / "study"), config_name="study")
def study(cfg: DictConfig) -> None:
    try:
        code = Runner(cfg).run()
        if cfg.report:
            print(f"report: {write_results(cfg.dir)}", flush=True)
    except KeyboardInterrupt:
        print("study: interrupted; run the same command again to resume", file=sys.stderr)
        sys.exit(130)
    except QbnError as e:
        print(f"qbn: {e}", file=sys.stderr)
        sys.exit(1)
    if code:
        sys.exit(code)


def _report(args: list[str]) -> str:
    path = write_results(args[0])
    bad = [str(r.dir) for r in damaged(read_study(args[0]))]
    return f"wrote {path}" + (f"; {len(bad)} runs with a damaged file, not counted: {', '.join(bad)}" if bad else "")


def report_main(argv: list[str]) -> int:
    return command(argv, "python -m qbn.study report STUDY_DIR", lambda a: len(a) == 1, _report)


def plan_main(argv: list[str]) -> int:
    """`plan [--runs] OVERRIDES`: compose the study config as the study would (Hydra's compose API:
    the study's own app is not started), print its plan."""
    runs = "--runs" in argv
    try:
        overrides = split_overrides([a for a in argv if a != "--runs"])
        try:
            cfg = compose_config(CONFIG_DIR / "study", "study", overrides)
        except ConfigError as e:   # an override or group that does not compose: the command's usage (2)
            print(f"qbn: study plan: {e}", file=sys.stderr)
            return 2
        check_fields(cfg)
        print(plan_report(cfg, runs))
    except QbnError as e:
        print(f"qbn: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - Hydra's override and composition errors: one line
        print(f"qbn: study plan: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


# the study's own options (the keys of conf/study/study.yaml, its config groups and hydra); any
# other override (trainer=gpu, dataset.train_subset=5000) is for every run
STUDY_KEYS = set(OmegaConf.load(CONFIG_DIR / "study" / "study.yaml")) - {"defaults"} | {"scale", "hydra"}


def split_overrides(argv: list[str]) -> list[str]:
    """The study's overrides, with the runs' own (`trainer=ddp trainer.devices=2`) gathered into
    train=[...] so a user types them as for qbn.train."""
    ours, runs = [], []
    for a in argv:
        key = a.split("=", 1)[0].lstrip("+~").split(".", 1)[0]
        (ours if a.startswith("-") or "=" not in a or key in STUDY_KEYS else runs).append(a)
    if runs:
        if any(a.split("=", 1)[0] == "train" for a in ours):
            raise QbnError(f"give run overrides either in train=[...] or loose ({' '.join(runs)}), not both")
        ours.append("train=[" + ",".join(json.dumps(a) for a in runs) + "]")
    return ours


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        sys.exit(report_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "plan":
        sys.exit(plan_main(sys.argv[2:]))
    try:  # a scale or run option naming no file (scale=huge, model=resnet99): one line, not Hydra's list
        check_choices(sys.argv[1:], CONFIG_DIR / "study")
        check_choices(sys.argv[1:], CONFIG_DIR)
        sys.argv[1:] = split_overrides(sys.argv[1:])
        # the study's own options typed before Hydra's app starts (it would rewrite .study/ first)
        check_fields(compose_config(CONFIG_DIR / "study", "study", [a for a in sys.argv[1:] if not a.startswith("-")]))
    except QbnError as e:
        print(f"qbn: {e}", file=sys.stderr)
        sys.exit(2)
    study()
