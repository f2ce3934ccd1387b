"""The kernels / QBN section of a run's report.md (listed in qbn.report.SECTIONS)."""

from __future__ import annotations

from pathlib import Path

from ..file_io import read_json
from ..rundir import RunDir


def kernel_section(run_dir: Path) -> str:
    """Kernel statistics (kernels.json) and, for a QBN run, its codebooks and bits."""
    lines: list[str] = []
    path = RunDir(run_dir).kernels_json
    stats = read_json(path)
    if stats is not None:
        o = stats["overall"]
        lines += ["## Binary kernels (3x3)", "",
                  f"{o['kernels']} kernels in {len(stats['layers'])} 3x3 binary layers "
                  f"(not counted: {', '.join(stats.get('not_counted') or []) or 'none'}).", "",
                  "| | entropy (bits) | distinct | top-1 % | top-8 % | top-32 % |", "|---|---|---|---|---|---|",
                  f"| all layers | {o['entropy']:.2f} | {o['distinct']} | {100 * o['top1']:.1f} "
                  f"| {100 * o['top8']:.1f} | {100 * o['top32']:.1f} |",
                  "| uniform | 9.00 | 512 | 0.2 | 1.6 | 6.3 |"]
        for name, s in stats["layers"].items():
            lines.append(f"| {name} | {s['entropy']:.2f} | {s['distinct']} | {100 * s['top1']:.1f} "
                         f"| {100 * s['top8']:.1f} | {100 * s['top32']:.1f} |")
        lines += [""] + [f"![{Path(f).stem}]({f})" for f in stats.get("figures", [])]
    summary = RunDir(run_dir).read_summary() or {}
    if summary.get("qbn"):
        q = summary["qbn"]
        ns = sorted(set((summary.get("qbn_bits") or {}).values()))
        learned = (f" (init {q.get('learned_init')}; coverage and signs changed at the start)"
                   if q.get("method") == "learned" else "")
        distill_weight = summary.get("qbn/distill_weight")
        distilled = f", distilled (w = {distill_weight})" if distill_weight else ""
        lines += ["", "## QBN", "",
                  f"n = {', '.join(map(str, ns)) or '-'} bits per kernel ({q.get('codebook')} codebook"
                  f"{', budget ' + str(q['budget']) if q.get('budget') is not None else ''}"
                  f"{', progressive' if q.get('progressive') else ''}); method {q.get('method', 'topk')}"
                  f"{learned}; from {q.get('from_ckpt') or 'scratch'}{distilled}.",
                  f"Bits per binarized weight: {summary.get('bits_per_weight', float('nan')):.4f}; model size "
                  f"{summary.get('model_bytes', 0)} bytes (computed).", "", summary.get("qbn_note", ""),
                  f"Binary layers not quantized: {', '.join(summary.get('qbn_not_quantized') or []) or 'none'}.", "",
                  "| layer | n | distinct before | codebook coverage % | signs changed % | note |",
                  "|---|---|---|---|---|---|"]
        for name, r in (summary.get("qbn_layers") or {}).items():
            cov = r.get("codebook_coverage")
            ch = r.get("signs_changed")
            lines.append(f"| {name} | {r['bits']} | {r['distinct']} | {'-' if cov is None else f'{100 * cov:.1f}'} | "
                         f"{'-' if ch is None else f'{100 * ch:.2f}'} | {r.get('note', '')} |")
    return "\n".join(lines)

