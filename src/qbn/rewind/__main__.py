"""`python -m qbn.rewind [OVERRIDES ...] [-- SWEEP OVERRIDES ...]` (or `qbn-rewind`): primary
sub-networks in one command. It trains the trunk (`rewind=trunk`), then the rewound runs and their
controls as one multirun (`rewind=rewound`) that takes exactly that trunk and aggregates itself at
its end (results.md, results.csv, figures/rewind.png in the sweep directory).

    python -m qbn.rewind                                   # experiment=primary_subnet, as the preset says
    python -m qbn.rewind trainer=gpu callbacks.progress=null
    python -m qbn.rewind dataset=digits trainer.max_epochs=3 -- 'rewind.signs=epoch:0,epoch:2,random,final' seed=0,1
    python -m qbn.rewind --reuse-trunk                     # the newest completed trunk of that name, if any

OVERRIDES apply to both steps (without an `experiment=`, experiment=primary_subnet is used);
those after `--` to the sweep only. The trunk's run directory is
<output_dir>/<trunk name>/<timestamp>, the sweep's <output_dir>/<name>/multirun_<timestamp>.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from ..config import CONFIG_DIR, check_choices
from ..errors import ConfigError, QbnError
from ..schema import check_config
from ..schema import compose_train as _compose
from .spec import RewindError, parse_signs, parse_weights
from .trunk import find_trunk

DEFAULT_EXPERIMENT = "experiment=primary_subnet"
DEFAULT_TRUNK_NAME = "primary_subnet_trunk"


@dataclass
class RewindStudy:
    """Where a trunk-then-rewound study left its results, and how its steps ended (0: all went well)."""

    trunk_dir: Path
    sweep_dir: Path | None
    returncode: int


def check_rewound(cfg) -> None:
    """A composed rewound config's typed options and its rewind.signs / rewind.weights grammar."""
    check_config(cfg)
    if cfg.rewind.signs is not None:
        parse_signs(cfg.rewind.signs)
    if cfg.rewind.weights is not None:
        parse_weights(cfg.rewind.weights)


def sweep_values(sweep: list[str]) -> list[str]:
    """Each value of each sweep override as a single override (`seed=0,1` -> `seed=0`, `seed=1`), so
    every value can be checked before the trunk trains; a sweep spec Hydra cannot parse is one ConfigError."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(sweep))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"bad sweep override in {' '.join(sweep)}: {str(e).splitlines()[0][:200]}") from None
    singles = []
    for o in parsed:
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        singles += [f"{o.get_key_element()}={v}" for v in values]
    return singles


def check_before_training(common: list[str], sweep: list[str], trunk_name: str) -> None:
    """Every option of both steps, and every value of the sweep, checked before the trunk trains
    (the trunk's config, then the rewound runs' config once per sweep value)."""
    check_choices([*common, *sweep], CONFIG_DIR)
    check_config(_compose([*common, "rewind=trunk", f"name={trunk_name}"]))
    rewound = [*common, "rewind=rewound", "rewind.trunk=the_trunk"]  # any name: the trunk is not read here
    for single in sweep_values(sweep) or [None]:
        check_rewound(_compose(rewound + ([single] if single else [])))


def _stamp() -> str:
    return datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")


def trunk_then_rewound(overrides: list[str] | tuple[str, ...] = (), sweep: list[str] | tuple[str, ...] = (),
                       trunk_name: str = DEFAULT_TRUNK_NAME, reuse_trunk: bool = False,
                       python: str = sys.executable) -> RewindStudy:
    """Train a trunk, then the rewound multirun from exactly that trunk; each step is
    `python -m qbn.train` in its own process (so launchers, resuming and aggregation work as
    usual). `overrides` apply to both steps, `sweep` to the multirun only. A step that fails
    stops the study with its exit code; a failed rewound job leaves the others' results."""
    common = list(overrides)
    if any(o.split("=", 1)[0].lstrip("+~") == "name" for o in common):
        raise ConfigError("name= would name both steps: give the trunk's name with --trunk-name "
                          "(the sweep's name comes from the experiment preset)")
    if not any(o.split("=", 1)[0].lstrip("+~") == "experiment" for o in common):
        common.insert(0, DEFAULT_EXPERIMENT)
    check_before_training(common, list(sweep), trunk_name)
    trunk_cfg = _compose([*common, "rewind=trunk", f"name={trunk_name}"])
    output_dir = Path(str(trunk_cfg.paths.output_dir))
    trunk_dir = None
    if reuse_trunk:
        try:
            trunk_dir = find_trunk(trunk_name, output_dir)
            print(f"qbn.rewind: reusing the completed trunk {trunk_dir}", flush=True)
        except RewindError:
            trunk_dir = None
    if trunk_dir is None:
        trunk_dir = output_dir / trunk_name / _stamp()
        r = subprocess.run([python, "-m", "qbn.train", *common, "rewind=trunk", f"name={trunk_name}",
                            f"hydra.run.dir={trunk_dir}"])
        if r.returncode != 0:
            return RewindStudy(trunk_dir, None, r.returncode)
    rewound = [*common, "rewind=rewound", f"rewind.trunk={trunk_dir.resolve()}"]
    name = _compose(rewound).name   # the sweep overrides hold value lists (a,b): Hydra's multirun expands them
    sweep_dir = output_dir / str(name) / f"multirun_{_stamp()}"
    r = subprocess.run([python, "-m", "qbn.train", "-m", *rewound, *sweep, f"hydra.sweep.dir={sweep_dir}"])
    return RewindStudy(trunk_dir, sweep_dir, r.returncode)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    sweep: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, sweep = argv[:at], argv[at + 1:]
    parser = argparse.ArgumentParser(prog="python -m qbn.rewind",
                                     description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both steps, e.g. trainer=gpu dataset=digits")
    parser.add_argument("--trunk-name", default=DEFAULT_TRUNK_NAME, help="the trunk's run name (outputs/<name>/)")
    parser.add_argument("--reuse-trunk", action="store_true", help="reuse the newest completed trunk of that name")
    args = parser.parse_args(argv)
    try:
        study = trunk_then_rewound(args.overrides, sweep, args.trunk_name, args.reuse_trunk)
    except QbnError as e:
        print(f"qbn: {e}", file=sys.stderr)
        return 2
    if study.returncode == 0:
        print(f"qbn.rewind: trunk {study.trunk_dir}; rewound runs and results in {study.sweep_dir}")
    elif study.sweep_dir is None:
        print(f"qbn: the trunk failed (exit {study.returncode}); see {study.trunk_dir}", file=sys.stderr)
    else:
        print(f"qbn: some rewound runs failed (exit {study.returncode}); the others' results are in {study.sweep_dir}",
              file=sys.stderr)
    return study.returncode


if __name__ == "__main__":
    sys.exit(main())
