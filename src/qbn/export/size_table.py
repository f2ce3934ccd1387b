"""The size table of a packed model, in bits, larq-like (`python -m qbn.summary CKPT_OR_FILE`).

Given a .qbn file, the sizes are read from its header and the measured file size is shown next
to the computed one. Given a checkpoint or run directory, the model is packed in memory with
the chosen options (nothing written) and the checkpoint's own size is shown for comparison.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..checkpoint import checkpoint_file, model_from_checkpoint
from ..errors import QbnError
from .files import export_module, is_packed_file, report_bytes
from .loader import read_bytes


def summarize(source: str | Path, fmt: str = "packed", alpha_dtype: str = "fp32", fp_dtype: str = "fp32",
              fold_bn: bool = False) -> dict:
    """size_report of a packed file, or of a checkpoint packed in memory (plus 'checkpoint_bytes')."""
    source = Path(source)
    if is_packed_file(source):
        return report_bytes(read_bytes(source))
    if not source.exists():
        raise QbnError(f"{source} does not exist: give a .qbn file, a checkpoint or a run directory")
    module, cfg = model_from_checkpoint(source, require_binary=False)
    report = report_bytes(export_module(module, cfg, None, fmt, alpha_dtype, fp_dtype, fold_bn))
    report["totals"]["checkpoint_bytes"] = checkpoint_file(source).stat().st_size
    return report


def render(report: dict, title: str) -> None:
    """Print the table and totals with rich."""
    table = Table(title=title, show_lines=False)
    for col, justify in (("layer", "left"), ("kind", "left"), ("shape", "left"), ("params", "right"),
                         ("bits/weight", "right"), ("H", "right"), ("bytes", "right")):
        table.add_column(col, justify=justify)
    for r in report["rows"]:
        shape = "x".join(str(s) for s in r["shape"]) if r["shape"] else "-"
        h = "" if r.get("entropy") is None else f"{r['entropy']:.3f}"
        table.add_row(r["layer"], r["kind"], shape, f"{r['params']:,}", f"{r['bits_per_weight']:.3f}", h,
                      f"{round(r['bytes']):,}")
    t = report["totals"]
    table.add_section()
    table.add_row("total", t["format"] or "", "", f"{t['params']:,}", "", "", f"{t['computed_file_bytes']:,}")
    console = Console()
    console.print(table)
    bpw = t["bits_per_binarized_weight"]
    lines = [f"binarized weights: {t['binarized_weights']:,}"
             + (f"; bits per binarized weight {bpw:.4f} (with scales {t['bits_per_binarized_weight_with_scales']:.4f})"
                if bpw is not None else "")]
    if any(r.get("entropy") is not None for r in report["rows"]):
        lines.append("H: empirical entropy of a 3x3 layer's stored symbols in bits per kernel "
                     "(kernel ids; QBN: index entropy)")
    if bpw is not None:
        lines.append(f"whole file: {t['file_bits_per_binarized_weight']:.4f} bits per binarized weight, of which")
        lines += [f"  {k:<15} {v:.4f}" for k, v in t["split_bits_per_binarized_weight"].items()]
    lines += [f"computed size: {t['computed_file_bytes']:,} bytes = data {t['data_bytes']:,} + prefix and header "
              f"{t['header_bytes']:,}; measured file size: {t['file_bytes']:,} bytes",
              f"fp32 equivalent: {t['fp32_bytes']:,} bytes; compression ratio {t['compression']:.2f}x"]
    if t.get("checkpoint_bytes"):
        lines.append(f"checkpoint file: {t['checkpoint_bytes']:,} bytes "
                     f"({t['checkpoint_bytes'] / t['file_bytes']:.1f}x the packed size)")
    for line in lines:
        console.print(line, highlight=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qbn.summary", description=__doc__.split("\n\n")[1])
    parser.add_argument("source", help=".qbn file, checkpoint or run directory")
    parser.add_argument("--format", default="packed", choices=("packed", "entropy"), help="for a checkpoint")
    parser.add_argument("--alpha-dtype", default="fp32", choices=("fp16", "fp32"))
    parser.add_argument("--fp-dtype", default="fp32", choices=("fp16", "fp32"))
    parser.add_argument("--fold", "--fold-bn", dest="fold_bn", action="store_true")
    args = parser.parse_args(argv)
    try:
        report = summarize(args.source, args.format, args.alpha_dtype, args.fp_dtype, args.fold_bn)
    except QbnError as e:
        print(f"qbn: {e}", file=sys.stderr)
        return 1
    render(report, f"qbn summary: {args.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
