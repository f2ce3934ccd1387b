"""`python -m qbn.kernels RUN_DIR_OR_CKPT [--layers a,b] [--out DIR]`: kernel statistics offline.

Writes kernels.json and figures/kernels_*.png into the run directory (or --out), from a run
directory (its last checkpoint), a checkpoint inside a run directory, or a sign snapshot
(signs/epoch_NNN.pt). Prints the headline figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..checkpoint import run_dir_of
from ..errors import QbnError
from ..file_io import check_can_write
from ..rundir import RunDir
from .read_signs import load_signs
from .run_stats import write_run_kernels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qbn.kernels", description=__doc__.split("\n\n")[1])
    parser.add_argument("source", help="run directory, Lightning checkpoint, or sign snapshot (signs/epoch_NNN.pt)")
    parser.add_argument("--layers", default=None, help="comma-separated layers whose top-32 kernels are drawn")
    parser.add_argument("--out", default=None, help="output directory (default: the run directory)")
    args = parser.parse_args(argv)
    try:
        src = Path(args.source)
        signs = load_signs(src)  # every binary layer: kernel_stats counts the 3x3 ones, lists the rest
        run_dir = Path(args.out) if args.out else (run_dir_of(src if src.is_dir() else src.parent)
                                                   or (src if src.is_dir() else src.parent))
        if src.is_file() and src.parent.name == RunDir.SIGNS and not args.out:
            run_dir = src.parent.parent
        layers = args.layers.split(",") if args.layers else None
        check_can_write(RunDir(run_dir).kernels_json, RunDir(run_dir).figures / "kernels.png")  # before writing
        stats = write_run_kernels(run_dir, signs, layers, source=str(src))
    except QbnError as e:
        print(f"qbn: {e}", file=sys.stderr)
        return 1
    o = stats["overall"]
    not_counted = ", ".join(stats["not_counted"]) or "none"
    print(f"{o['kernels']} kernels in {len(stats['layers'])} 3x3 binary layers; not counted: {not_counted}")
    print(f"entropy {o['entropy']:.3f} bits per kernel (uniform 9); distinct ids {o['distinct']}/512")
    print(f"top-1/8/32 coverage {100 * o['top1']:.2f} / {100 * o['top8']:.2f} / {100 * o['top32']:.2f} % "
          f"(uniform {100 / 512:.2f} / {800 / 512:.2f} / {3200 / 512:.2f} %)")
    print(f"most frequent ids: {o['top_ids'][:8]}")
    print(f"wrote {RunDir(run_dir).kernels_json} and {', '.join(stats['figures'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
