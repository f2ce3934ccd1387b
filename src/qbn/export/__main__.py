"""`python -m qbn.export`: write a packed model file, or evaluate one.

    python -m qbn.export RUN_DIR_OR_CKPT_OR_QBN --format onnx [--out FILE]   (docs/onnx.md)
    python -m qbn.export RUN_DIR_OR_CKPT [--out FILE] [--format packed|entropy]
                         [--alpha-dtype fp16|fp32] [--fp-dtype fp16|fp32] [--fold]
    python -m qbn.export --eval FILE dataset=fashion_mnist [dataset.test_subset=2000 ...]
"""

from __future__ import annotations

import argparse
import sys
import time

from ..errors import QbnError
from .evaluate import evaluate_file
from .files import export_with_report
from .onnx import export_onnx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qbn.export", description="Pack a BWN/QBN checkpoint into a "
                                     "model.qbn file (docs/format.md), or evaluate a packed file with --eval.")
    parser.add_argument("source", help="run directory or checkpoint (export); the .qbn file with --eval")
    parser.add_argument("overrides", nargs="*",
                        help="with --eval: Hydra-style dataset overrides, e.g. dataset=fashion_mnist")
    parser.add_argument("--out", default=None, help="output file (default: <run_dir>/model.qbn)")
    parser.add_argument("--format", default="packed", choices=("packed", "entropy", "onnx"),
                        help="onnx: a standard ONNX model (also from a packed .qbn file)")
    parser.add_argument("--alpha-dtype", default="fp32", choices=("fp16", "fp32"))
    parser.add_argument("--fp-dtype", default="fp32", choices=("fp16", "fp32"))
    parser.add_argument("--fold", "--fold-bn", dest="fold_bn", action="store_true",
                        help="store alpha and the following BatchNorm as one per-channel scale and shift "
                             "(smaller; predictions equal up to float rounding, not bit for bit)")
    parser.add_argument("--eval", action="store_true", help="print the test accuracy of the packed file SOURCE")
    args = parser.parse_args(argv)
    try:
        if args.eval:
            r = evaluate_file(args.source, args.overrides)
            print(f"test accuracy {100 * r['acc']:.2f} % ({r['images']} {r['dataset']} test images) from {args.source}")
            return 0
        if args.overrides:
            raise QbnError(f"unexpected arguments {' '.join(args.overrides)} (overrides are for --eval)")
        start = time.perf_counter()
        if args.format == "onnx":
            print(f"wrote {export_onnx(args.source, args.out)} ({time.perf_counter() - start:.1f} s)")
            return 0
        out, report = export_with_report(args.source, args.out, args.format, args.alpha_dtype, args.fp_dtype,
                                         args.fold_bn)
        t = report["totals"]
        bpw = t["bits_per_binarized_weight"]
        print(f"wrote {out}: {t['file_bytes']} bytes "
              f"({t['compression']:.1f}x smaller than fp32 {t['fp32_bytes']} bytes); "
              + (f"{bpw:.4f} bits per binarized weight" if bpw is not None else "no binarized weights")
              + f"; {time.perf_counter() - start:.1f} s")
    except QbnError as e:
        print(f"qbn: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
